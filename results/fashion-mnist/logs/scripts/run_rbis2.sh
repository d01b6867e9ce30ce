#!/bin/bash
# RBIS vs compound scaling of mbconv-tiny (32 px) to twice its cpu latency on Fashion-MNIST
# (issue 24, second half). Cut for the shared CPU: --candidates 3 (was 5) and --max-seeds 1
# (no racing; the first run's racing decisions are in logs/rbis.log); every training of the
# first run is reused from the cache. Then the three winners trained 3 epochs x 3 seeds.
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
O=workers=0,progress=false
OUT=/work/acc-data/out/rbis-vs-compound-k3
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/latency-lab compare --network /work/acc-data/mbconv-tiny-32.json --budget-ms 0.1754 \
  --latency cpu --accuracy "train:$D,epochs=1,warmup=0.2,$O" --resolutions 32,40 \
  --candidates 3 --max-seeds 1 --executor local:2 --out $OUT || exit 1
echo "search done $(date -Is) load $(cat /proc/loadavg)"
for m in baseline rbis compound; do
  ( .venv/bin/latency-lab accuracy evaluate "$OUT/compare.json#$m" \
    --accuracy "train:$D,epochs=3,seeds=3,$O" --json > $OUT/long-$m.json
    echo "long $m done rc $? $(date -Is) load $(cat /proc/loadavg)" ) &
done
wait
echo "end $(date -Is) load $(cat /proc/loadavg)"
