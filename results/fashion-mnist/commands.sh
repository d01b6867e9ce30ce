#!/bin/bash
# The real-data studies of issue 24 (Fashion-MNIST, mbconv-tiny at 32 px, this 2-core CPU), as
# run: the run_*.sh scripts of /work/acc-data did the same with absolute paths, several
# evaluations at a time, all in one store (LATENCY_LAB_CACHE), so each step below found what an
# earlier one had evaluated. Every evaluation is cached: a rerun evaluates only what is missing.
# Run from the checkout's root with the [torch] extra; about 3 CPU-hours on an idle core.
set -e
LL=.venv/bin/latency-lab
PY=.venv/bin/python
OUT=${OUT:-results/fashion-mnist}
O=workers=0,progress=false

# the data: Debian's dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist)
$LL dataset fashion-mnist --out fmnist-1000-500 --train-per-class 1000 --val-per-class 500
$LL dataset fashion-mnist --out fmnist-250-200 --train-per-class 250 --val-per-class 200

# (a) proxy ranking of the 11 single steps: reference train: 3 epochs x 3 seeds on 2,500 images
# (2,000 validation images); cheap: zen, zen-tuned, train: 1 epoch x 3 seeds, net2net: defaults
$PY benchmarks/proxy_ranking.py --network mbconv-tiny --resolution 32 --r-step 8 \
  --prefix fmnist_ranking --out $OUT/ranking --executor local:3 \
  --evaluator "zen,repeats=8" --evaluator "zen-tuned,repeats=8" \
  --evaluator "train:fmnist-250-200,epochs=1,warmup=0.2,seeds=3,$O" \
  --evaluator "net2net:fmnist-250-200,$O" \
  --evaluator "train:fmnist-250-200,epochs=3,seeds=3,$O"

# (b) RBIS vs compound scaling to twice the baseline's cpu latency (0.0877 ms measured here),
# searched with one epoch on the 2,500 images, then the winners trained 2 epochs x 3 seeds on the
# 10,000 / 5,000 images
$LL compare --network $OUT/mbconv-tiny-32.json --budget-ms 0.1754 --latency cpu \
  --accuracy "train:fmnist-250-200,epochs=1,warmup=0.2,$O" --resolutions 32,40 \
  --candidates 3 --max-seeds 1 --executor local:3 --out $OUT/rbis-vs-compound
for m in rbis compound baseline; do
  $LL accuracy evaluate "$OUT/rbis-vs-compound/compare.json#$m" \
    --accuracy "train:fmnist-1000-500,epochs=2,seeds=3,$O" --json > $OUT/rbis-vs-compound/long-$m.json
done
$PY benchmarks/rbis_vs_compound.py $OUT/rbis-vs-compound

# the seed-range target: the baseline, 3 epochs on the 10,000 images, 3 seeds
$LL accuracy evaluate $OUT/mbconv-tiny-32.json --accuracy "train:fmnist-1000-500,epochs=3,seeds=3,$O" \
  --json > $OUT/seed-range-3epochs.json

# decoding once against decoding the PNG files every epoch
$PY benchmarks/decode_benchmark.py --data fmnist-1000-500 --steps 60 --repeats 3 --out $OUT
