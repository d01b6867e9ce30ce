#!/bin/bash
# RBIS vs compound scaling of mbconv-tiny (32 px) to twice its cpu latency on Fashion-MNIST
# (issue 24, second half). Cut for the shared CPU (load 10-12): the search's evaluator trains one
# epoch on 2,500 images (250 per class; 2,000 validation images), --candidates 3, --max-seeds 1
# (no racing: the first run's racing decisions on 10,000 images are in logs/rbis.log). Then the
# winners trained 2 epochs x 3 seeds on the 10,000 / 5,000 images (the ranking's reference recipe).
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
S=/work/acc-data/fmnist-250-200
D=/work/acc-data/fmnist-1000-500
O=workers=0,progress=false
OUT=/work/acc-data/out/rbis-vs-compound-small
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/latency-lab compare --network /work/acc-data/mbconv-tiny-32.json --budget-ms 0.1754 \
  --latency cpu --accuracy "train:$S,epochs=1,warmup=0.2,$O" --resolutions 32,40 \
  --candidates 3 --max-seeds 1 --executor local:3 --out $OUT || exit 1
echo "search done $(date -Is) load $(cat /proc/loadavg)"
for m in rbis compound baseline; do
  ( .venv/bin/latency-lab accuracy evaluate "$OUT/compare.json#$m" \
    --accuracy "train:$D,epochs=2,seeds=3,$O" --json > $OUT/long-$m.json
    echo "long $m done rc $? $(date -Is) load $(cat /proc/loadavg)" ) &
done
wait
echo "end $(date -Is) load $(cat /proc/loadavg)"
