#!/bin/bash
# proxy-ranking study on Fashion-MNIST, sized for the shared CPU (issue 24, second half): 2,500
# training images (250 per class) and 2,000 validation images (200 per class); cheap train:
# one epoch (warm-up 0.2) x 3 seeds, reference train: 3 epochs x 3 seeds; 3 trainings at a time
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
S=/work/acc-data/fmnist-250-200
O=workers=0,progress=false
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/python benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_small_train --out /work/acc-data/out --executor local:3 \
  --evaluator "train:$S,epochs=1,warmup=0.2,seeds=3,$O" \
  --evaluator "train:$S,epochs=3,seeds=3,$O"
echo "end $(date -Is) rc $? load $(cat /proc/loadavg)"
