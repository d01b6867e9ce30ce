#!/usr/bin/env bash
# The front page's core commands on other Python versions, as a new user runs them: a fresh
# clone of this checkout's HEAD, a fresh venv, `pip install -e .` (the core: no torch, no
# TensorFlow), then `--version`, the offline search, a short capped sweep, a sweep plan (TOML:
# tomllib from 3.11, tomli before) and a tflite export. CI runs 3.11 with the tests; this is
# how other versions are checked (the README claims only what this or CI ran).
#
# Usage: benchmarks/python_versions.sh PYTHON [PYTHON ...] > results/benchmarks/python_versions.md
#   e.g. benchmarks/python_versions.sh ~/.pyenv/versions/3.10.13/bin/python3 \
#                                      ~/.pyenv/versions/3.12.1/bin/python3
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)"
echo "# the core commands on other Python versions (commit $COMMIT, $(date '+%Y-%m-%d %H:%M'))"
echo
echo "Fresh clone, fresh venv, \`pip install -e .\`; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| Python | install (s) | --version | offline search (CPU s) | sweep 8 points, 15 s cap | sweep-plan | export tflite |"
echo "|---|---|---|---|---|---|---|"
for PY in "$@"; do
  VER="$("$PY" -c 'import platform; print(platform.python_version())')"
  WORK="$(mktemp -d /tmp/pyver-XXXXXX)"
  git clone -q "$ROOT" "$WORK/repo" && git -C "$WORK/repo" checkout -q "$COMMIT"
  cd "$WORK/repo" || exit 1
  export LATENCY_LAB_CACHE="$WORK/cache"
  T0=$(date +%s)
  if "$PY" -m venv .venv && .venv/bin/pip install -q -e . > "$WORK/pip.log" 2>&1; then
    INSTALL="$(( $(date +%s) - T0 ))"
  else
    echo "| $VER | failed: $(tail -1 "$WORK/pip.log") | | | | | |"; continue
  fi
  ok() { if "$@" > "$WORK/out.log" 2>&1; then echo "ok"; else echo "FAILED ($(tail -1 "$WORK/out.log" | cut -c1-80))"; fi; }
  V="$(ok .venv/bin/latency-lab --version)"
  S="$(/usr/bin/time -f '%U %S' -o "$WORK/t" .venv/bin/latency-lab search --budget-ms 20 \
        --resolutions 224:288:16 --accuracy synthetic \
        --latency table:results/cpu/latency-table-b0-search.csv \
        --latency lut:results/cpu/lut-efficientnet-b0-to-b2.json --out rbis-20ms \
        > "$WORK/search.log" 2>&1 && awk '{printf "ok (%.2f)", $1 + $2}' "$WORK/t" \
        || echo "FAILED ($(tail -1 "$WORK/search.log" | cut -c1-80))")"
  W="$(ok .venv/bin/latency-lab sweep --device cpu --network efficientnet-b0 \
        --resolutions 160:216:8 --time-cap-s 15 --out sweep.csv)"
  sed 's/time_cap_s = 90/time_cap_s = 8/' examples/plan-cpu.toml > "$WORK/plan.toml"
  P="$(ok .venv/bin/latency-lab sweep-plan "$WORK/plan.toml" --no-jumps --out "$WORK/plan")"
  E="$(ok .venv/bin/latency-lab network export efficientnet-b0 --format tflite --out b0.tflite)"
  echo "| $VER | $INSTALL | $V | $S | $W | $P | $E |"
  cd "$ROOT" && rm -rf "$WORK"
done
