#!/bin/bash
# decode-once benchmark (issue 24 target: >= 2x images/s of PNG decoding), on the study's folder
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
echo "start $(date -Is) load $(cat /proc/loadavg)"
mkdir -p /work/acc-data/out/decode
.venv/bin/python benchmarks/decode_benchmark.py --data /work/acc-data/fmnist-1000-500 --steps 60 \
  --repeats 3 --out /work/acc-data/out/decode
echo "end $(date -Is) rc $? load $(cat /proc/loadavg)"
