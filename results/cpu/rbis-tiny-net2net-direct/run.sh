#!/bin/bash
cd /tmp/tiny-rerun
export LATENCY_LAB_CACHE=/tmp/tiny-rerun/cache
L=/work/main/.venv/bin/latency-lab
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
$L dataset synth --out demo-data
(while sleep 30; do echo "load $(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; done) &
LP=$!
/usr/bin/time -f "wall %e s, user %U s, sys %S s, maxrss %M KB" $L search --network mbconv-tiny --budget-ms 0.75 --latency cpu --max-rounds 8 \
  --accuracy net2net:demo-data,epochs=1,base_epochs=8 --resolutions 64,80 --candidates 4 \
  --out /tmp/tiny-rerun/out
echo "rc=$?"
kill $LP
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
