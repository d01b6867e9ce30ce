#!/bin/bash
# after the RBIS study: the seed range of mbconv-tiny (3 epochs, 32 px, 10,000 images, 3 seeds)
# and the decode benchmark (issue 24)
cd /work/wt-accuracy
export LATENCY_LAB_CACHE=/work/acc-data/cache
D=/work/acc-data/fmnist-1000-500
while kill -0 $(cat /work/acc-data/logs/rbis.pid) 2>/dev/null; do sleep 60; done
echo "start $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/latency-lab accuracy evaluate /work/acc-data/mbconv-tiny-32.json \
  --accuracy "train:$D,epochs=3,seeds=3,workers=0,progress=false" --json \
  > /work/acc-data/out/seed-range-3epochs.json
echo "seed range done $(date -Is) load $(cat /proc/loadavg)"
.venv/bin/python benchmarks/decode_benchmark.py --data $D --steps 60 --repeats 5 \
  --out /work/acc-data/out
echo "end $(date -Is) load $(cat /proc/loadavg)"
