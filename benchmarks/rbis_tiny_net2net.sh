#!/bin/bash
# RBIS with net2net: on mbconv-tiny, the synthetic set and live cpu latencies, with the machine's
# load average logged every 30 s and the search's wall/CPU time and peak memory (/usr/bin/time).
# A fresh cache and store in WORK, so nothing is read back from earlier runs. This made
# results/cpu/rbis-tiny-net2net-direct/ (its run.log is this script's output; the run used
# WORK=/tmp/tiny-rerun, OUT=/tmp/tiny-rerun/out, then copied OUT there):
#
#   bash benchmarks/rbis_tiny_net2net.sh results/cpu/rbis-tiny-net2net-direct /tmp/tiny-rerun \
#       > run.log 2>&1
#
# OUT (default rbis-tiny-net2net) is relative to the directory it is started in; WORK defaults
# to a new temporary directory; LATENCY_LAB names the command (default: the checkout's .venv).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-rbis-tiny-net2net}")
WORK=${2:-$(mktemp -d /tmp/tiny-rerun.XXXXXX)}
L=${LATENCY_LAB:-$ROOT/.venv/bin/latency-lab}
mkdir -p "$WORK" && cd "$WORK" || exit 2
export LATENCY_LAB_CACHE=$WORK/cache
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
$L dataset synth --out demo-data
(while sleep 30; do echo "load $(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; done) &
LP=$!
/usr/bin/time -f "wall %e s, user %U s, sys %S s, maxrss %M KB" $L search --network mbconv-tiny --budget-ms 0.75 --latency cpu --max-rounds 8 \
  --accuracy net2net:demo-data,epochs=1,base_epochs=8 --resolutions 64,80 --candidates 4 \
  --out "$OUT"
echo "rc=$?"
kill $LP
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
