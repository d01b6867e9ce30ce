#!/system/bin/sh
# latency-lab: what runs on the phone for one visit of one (network, resolution) point.
#
#   sh run_bench.sh REPEAT CPUS -- COMMAND [ARG...]
#
# Runs COMMAND (the benchmark_model invocation, `taskset MASK` included, built and quoted by
# devices/android.py) REPEAT times in a row, and reads the thermal state and the governor and
# frequencies of CPUS (comma-separated ids, may be empty) before and after. Everything is
# printed as marker lines the host parses:
#   LL_PROBE <phase> <key>=<value>     phase: before | after
#   LL_BEGIN <i> / LL_END <i> rc=<exit status>   around the output of invocation i
# Arguments are used only as "$@": nothing the host sends is re-split or evaluated.
# Plain POSIX sh (Android's mksh, toybox): no bash-isms. LL_SYSFS_ROOT prefixes /sys (unset on
# a phone; the tests' simulated phone points it at its sandbox).

repeat=$1
cpus=$2
shift 2
[ "$1" = "--" ] && shift

probe() {
    phase=$1
    if command -v dumpsys >/dev/null 2>&1; then
        status=$(dumpsys thermalservice 2>/dev/null | grep -m 1 'Thermal Status' | tr -dc '0-9')
        [ -n "$status" ] && echo "LL_PROBE $phase thermal_status=$status"
    fi
    hottest=""
    for zone in "${LL_SYSFS_ROOT:-}"/sys/class/thermal/thermal_zone*/temp; do
        [ -r "$zone" ] || continue
        t=$(cat "$zone" 2>/dev/null)
        case "$t" in ''|*[!0-9-]*) continue ;; esac
        if [ -z "$hottest" ] || [ "$t" -gt "$hottest" ]; then hottest=$t; fi
    done
    [ -n "$hottest" ] && echo "LL_PROBE $phase temp_max_mc=$hottest"
    old_ifs=$IFS
    IFS=,
    for c in $cpus; do
        d="${LL_SYSFS_ROOT:-}/sys/devices/system/cpu/cpu$c/cpufreq"
        for f in scaling_governor scaling_cur_freq scaling_min_freq scaling_max_freq cpuinfo_max_freq; do
            [ -r "$d/$f" ] && echo "LL_PROBE $phase cpu${c}_$f=$(cat "$d/$f" 2>/dev/null)"
        done
    done
    IFS=$old_ifs
}

probe before
i=0
while [ "$i" -lt "$repeat" ]; do
    echo "LL_BEGIN $i"
    "$@" 2>&1
    rc=$?
    echo "LL_END $i rc=$rc"
    [ "$rc" -ne 0 ] && break
    i=$((i + 1))
done
probe after
exit 0
