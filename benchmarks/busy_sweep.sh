#!/usr/bin/env bash
# One busy sweep: EfficientNet-B0 on the host CPU with a real CPU load beside it (issue 22).
#
#   benchmarks/busy_sweep.sh TAG "STRESS-NG ARGS" [latency-lab sweep options...]
#   e.g. benchmarks/busy_sweep.sh load50 "--cpu 1 --cpu-load 50" --time-cap-s 600
#        benchmarks/busy_sweep.sh quiet "" --time-cap-s 600
#
# Writes results/cpu/busy/efficientnet-b0_busy_TAG.csv (the sweep) and ..._TAG_load.txt (the
# stress-ng command, /proc/loadavg every 15 s from start to end, wall time). The store is
# STORE_DIR/TAG.sqlite (default /tmp/jumps-busy), fresh for each run (--remeasure), so the
# sweep measures every point anew. The latency-lab command is LATENCY_LAB (default
# .venv/bin/latency-lab). stress-ng and the load logger are stopped by their own pids.
set -euo pipefail
tag=$1; stress=$2; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
out_dir=${OUT_DIR:-$root/results/cpu/busy}
store_dir=${STORE_DIR:-/tmp/jumps-busy}
lab=${LATENCY_LAB:-$root/.venv/bin/latency-lab}
mkdir -p "$out_dir" "$store_dir"
csv=$out_dir/efficientnet-b0_busy_$tag.csv
log=$out_dir/efficientnet-b0_busy_${tag}_load.txt
{
  echo "tag: $tag"
  echo "stress-ng: ${stress:-none}"
  echo "sweep options: $*"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)"
  echo "start: $(date -u +%FT%TZ) loadavg $(cat /proc/loadavg)"
} > "$log"
stress_pid=""
if [ -n "$stress" ]; then
  # shellcheck disable=SC2086
  stress-ng $stress --timeout 3600s --quiet & stress_pid=$!
fi
( while true; do echo "$(date -u +%T) $(cat /proc/loadavg)"; sleep 15; done ) >> "$log" & logger_pid=$!
stop() {
  [ -n "$stress_pid" ] && kill "$stress_pid" 2>/dev/null || true
  kill "$logger_pid" 2>/dev/null || true
}
trap stop EXIT
t0=$(date +%s)
"$lab" sweep --device cpu --network efficientnet-b0 --resolutions 160:400:4 \
  --store "$store_dir/$tag.sqlite" --remeasure --out "$csv" "$@"
echo "end: $(date -u +%FT%TZ) loadavg $(cat /proc/loadavg) wall $(( $(date +%s) - t0 )) s" >> "$log"
