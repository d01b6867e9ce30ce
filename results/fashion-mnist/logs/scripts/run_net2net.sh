#!/bin/bash
# the net2net: part of the ranking study, in parallel with the rest (issue 24); every
# evaluation lands in the same store, so the ranking script finds it there
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/python benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_ranking_net2net --out /work/acc-data/out \
  --evaluator "net2net:$D,seeds=3,workers=0,progress=false"
echo "end $(date -Is) rc $? load $(cat /proc/loadavg)"
