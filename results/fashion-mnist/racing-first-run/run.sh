#!/bin/bash
# RBIS vs compound scaling of mbconv-tiny (32 px) to twice its cpu latency on Fashion-MNIST
# (issue 24); resumable: latencies and evaluations are in the store, trainings in the cache
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
O=workers=0,progress=false
OUT=/work/acc-data/out/rbis-vs-compound
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/latency-lab compare --network /work/acc-data/mbconv-tiny-32.json --budget-ms 0.1754 \
  --latency cpu --accuracy "train:$D,epochs=1,warmup=0.2,$O" --resolutions 32,40 \
  --candidates 5 --max-seeds 3 --out $OUT || exit 1
echo "search done $(date -Is) load $(cat /proc/loadavg)"
for m in baseline rbis compound; do
  .venv/bin/latency-lab accuracy evaluate "$OUT/compare.json#$m" \
    --accuracy "train:$D,epochs=6,seeds=3,$O" --json > $OUT/long-$m.json || exit 1
  echo "long $m done $(date -Is) load $(cat /proc/loadavg)"
done
echo "end $(date -Is) load $(cat /proc/loadavg)"
