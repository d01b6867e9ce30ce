#!/bin/bash
# one training of the long phase: long_job.sh NETWORK_REF EPOCHS SEED [NOT_AFTER_EPOCH_S]
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
if [ -n "$4" ] && [ "$(date +%s)" -gt "$4" ]; then echo "skip $1 e$2 s$3: too late"; exit 0; fi
.venv/bin/latency-lab accuracy evaluate "$1" --accuracy "train:$D,epochs=$2,seed=$3,workers=0,progress=false" \
  --json > /dev/null 2>>/work/acc-data/logs/long_jobs.err
echo "done $1 e$2 s$3 rc $? $(date -Is) load $(cat /proc/loadavg)"
