#!/bin/bash
# the net2net: part (its defaults: base_epochs=10, epochs=2, one seed) on the same 2,500 / 2,000 images
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
S=/work/acc-data/fmnist-250-200
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/python benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_small_net2net --out /work/acc-data/out --executor local:2 \
  --evaluator "net2net:$S,workers=0,progress=false"
echo "end $(date -Is) rc $? load $(cat /proc/loadavg)"
