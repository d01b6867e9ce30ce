#!/bin/bash
# RBIS vs compound, the long phase (issue 24, second half): once the search (compare, pid in
# logs/compare.pid) has ended, the RBIS and compound winners and the baseline trained 2 epochs on
# the 10,000 / 5,000 images with seeds 0, 1, 2 (one training per job, 5 at a time; the trainings
# are the ones train:...,seeds=3 makes, so the gathering evaluations below come from the cache);
# then, where there is time (started before 15:05 UTC), the baseline 3 epochs x 3 seeds: the
# issue's seed-range target
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
O=workers=0,progress=false
OUT=/work/acc-data/out/rbis-vs-compound-small
while kill -0 $(cat /work/acc-data/logs/compare.pid) 2>/dev/null; do sleep 20; done
echo "start $(date -Is) load $(cat /proc/loadavg)"
test -f $OUT/compare.json || { echo "no compare.json"; exit 1; }
LATE=$(date -d "2026-12-06 15:05:00 UTC" +%s)
{ for s in 0 1 2; do for m in rbis compound baseline; do echo "$OUT/compare.json#$m 2 $s"; done; done
  for s in 0 1 2; do echo "/work/acc-data/mbconv-tiny-32.json 3 $s $LATE"; done; } \
  | xargs -P 5 -L 1 /work/acc-data/long_job.sh
for m in rbis compound baseline; do
  .venv/bin/latency-lab accuracy evaluate "$OUT/compare.json#$m" --accuracy "train:$D,epochs=2,seeds=3,$O" \
    --json > $OUT/long-$m.json; echo "gathered $m rc $?"
done
if [ "$(grep -c 'mbconv-tiny-32.json e3 s. rc 0' /work/acc-data/logs/long.log)" = 3 ]; then
  .venv/bin/latency-lab accuracy evaluate /work/acc-data/mbconv-tiny-32.json \
    --accuracy "train:$D,epochs=3,seeds=3,$O" --json > /work/acc-data/out/seed-range-3epochs.json
  echo "seed range rc $?"
else echo "seed range: not every 3-epoch training ran (cut for time)"; fi
echo "end $(date -Is) load $(cat /proc/loadavg)"
