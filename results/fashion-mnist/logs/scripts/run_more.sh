#!/bin/bash
# second round (issue 24, second half), after everything above ended at 14:44 with the load down to
# 4: seeds 3 and 4 of the RBIS and compound winners (2 epochs, 10,000 / 5,000 images), so that their
# difference is measured over 5 seeds; and net2net: with 3 seeds (3 lineages) for a bootstrap
# over seeds
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
S=/work/acc-data/fmnist-250-200
echo "start $(date -Is) load $(cat /proc/loadavg)"
LATE=$(date -d "2026-12-06 15:00:00 UTC" +%s)
{ for s in 3 4; do for m in rbis compound; do echo "/work/acc-data/out/rbis-vs-compound-small/compare.json#$m 2 $s $LATE"; done; done; } \
  | xargs -P 4 -L 1 /work/acc-data/long_job.sh &
.venv/bin/python benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_small_net2net3 --out /work/acc-data/out --executor local:2 \
  --evaluator "net2net:$S,seeds=3,workers=0,progress=false" > /work/acc-data/logs/net2net3.log 2>&1
echo "net2net seeds=3 rc $? $(date -Is) load $(cat /proc/loadavg)"
wait
echo "end $(date -Is) load $(cat /proc/loadavg)"
