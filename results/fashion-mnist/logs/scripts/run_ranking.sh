#!/bin/bash
# proxy-ranking study on Fashion-MNIST (issue 24); resumable: every evaluation is in the store
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
O=workers=0,progress=false
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/python benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_ranking --out /work/acc-data/out \
  --evaluator "zen,repeats=8" --evaluator "zen-tuned,repeats=8" \
  --evaluator "train:$D,epochs=1,seeds=3,$O" \
  --evaluator "train:$D,epochs=6,seeds=3,$O" \
  --evaluator "net2net:$D,seeds=3,$O"
echo "end $(date -Is) rc $? load $(cat /proc/loadavg)"
