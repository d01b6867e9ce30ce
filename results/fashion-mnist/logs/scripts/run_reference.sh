#!/bin/bash
# the ranking study's reference (issue 24, second half): train: 2 epochs x 3 seeds of the 11
# single steps, 3 candidates at a time; every evaluation lands in the store, so the final
# proxy_ranking run (run_ranking_final.sh) finds it there
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/python benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_ranking_reference --out /work/acc-data/out --executor local:3 \
  --evaluator "train:$D,epochs=2,seeds=3,workers=0,progress=false"
echo "end $(date -Is) rc $? load $(cat /proc/loadavg)"
