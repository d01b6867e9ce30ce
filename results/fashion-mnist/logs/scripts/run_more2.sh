#!/bin/bash
# seeds 3 and 4 of the baseline too (2 epochs, 10,000 / 5,000 images), then the three networks
# gathered with seeds=5 (every training from the cache)
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
OUT=/work/acc-data/out/rbis-vs-compound-small
echo "start $(date -Is) load $(cat /proc/loadavg)"
LATE=$(date -d "2026-12-06 15:05:00 UTC" +%s)
printf "%s\n" "$OUT/compare.json#baseline 2 3 $LATE" "$OUT/compare.json#baseline 2 4 $LATE" \
  | xargs -P 2 -L 1 /work/acc-data/long_job.sh
mkdir -p $OUT/seeds5
for m in rbis compound baseline; do
  .venv/bin/latency-lab accuracy evaluate "$OUT/compare.json#$m" \
    --accuracy "train:$D,epochs=2,seeds=5,workers=0,progress=false" --json > $OUT/seeds5/long-$m.json
  echo "gathered $m rc $?"
done
cp $OUT/compare.json $OUT/seeds5/
echo "end $(date -Is) load $(cat /proc/loadavg)"
