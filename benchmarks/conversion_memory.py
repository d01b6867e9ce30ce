"""Memory of converting many networks: in the calling process vs in the recycled worker.

A search converts hundreds of scaled networks; TensorFlow keeps part of each converted graph
for the life of its process. This script converts the same N random scaled EfficientNet-B0
variants (into a fresh, temporary model cache) twice, each time in a fresh Python process:
once with LATENCY_LAB_CONVERT_IN_PROCESS=1 (the old path) and once through
`build_keras.convert_isolated` (a worker replaced every CONVERSIONS_PER_WORKER conversions).
After every conversion it records the resident memory (RSS, from /proc) of the converting
process and of the worker, and prints the peak and the growth per conversion.

Run:  PYTHONPATH=. python benchmarks/conversion_memory.py [--networks 40]
Writes results/benchmarks/conversion_memory.{csv,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, random, sys, time
from pathlib import Path
from latency_lab.network import presets
from latency_lab.models import build_keras
from latency_lab.network.scaling import random_scaled

def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

def children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out

n, root = int(sys.argv[1]), sys.argv[2]
base = presets.load_network("efficientnet-b0")
rng = random.Random(3)
t0 = time.perf_counter()
for i in range(n):
    spec = random_scaled(base, 2, 1, rng)
    build_keras.tflite_path(spec, root)
    kids = children(os.getpid())
    print(json.dumps({"conversion": i + 1, "seconds": time.perf_counter() - t0,
                      "main_rss_mb": rss_mb(os.getpid()),
                      "worker_rss_mb": sum(rss_mb(k) for k in kids)}), flush=True)
"""


def run(mode: str, n: int) -> pd.DataFrame:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "LATENCY_LAB_CONVERT_IN_PROCESS": "1" if mode == "in-process" else "0"}
    with tempfile.TemporaryDirectory() as root:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), root], env=env,
                             capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    frame = pd.DataFrame(rows)
    frame.insert(0, "mode", mode)
    frame["total_rss_mb"] = frame["main_rss_mb"] + frame["worker_rss_mb"]
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=40)
    args = ap.parse_args()
    frames = []
    for mode in ("in-process", "worker"):
        t0 = time.perf_counter()
        frames.append(run(mode, args.networks))
        print(f"{mode}: {args.networks} conversions in {time.perf_counter() - t0:.0f} s",
              flush=True)
    frame = pd.concat(frames, ignore_index=True)
    out_dir = ROOT / "results" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "conversion_memory.csv", index=False, float_format="%.1f")
    rows = []
    for mode, g in frame.groupby("mode", sort=False):
        half = g[g["conversion"] > len(g) // 2]
        slope = (half["total_rss_mb"].iloc[-1] - half["total_rss_mb"].iloc[0]) / max(
            1, half["conversion"].iloc[-1] - half["conversion"].iloc[0])
        rows.append({"mode": mode, "conversions": len(g),
                     "seconds": round(float(g["seconds"].iloc[-1]), 1),
                     "peak_main_rss_mb": round(float(g["main_rss_mb"].max())),
                     "peak_worker_rss_mb": round(float(g["worker_rss_mb"].max())),
                     "final_main_rss_mb": round(float(g["main_rss_mb"].iloc[-1])),
                     "growth_mb_per_conversion_2nd_half": round(float(slope), 1)})
    table = pd.DataFrame(rows)
    text = (f"# Conversion memory ({args.networks} random scaled efficientnet-b0, "
            f"{time.strftime('%Y-%m-%d')})\n\n" + table.to_markdown(index=False)
            + "\n\nRSS from /proc after each conversion; `worker`: the converter process, "
              "replaced every CONVERSIONS_PER_WORKER conversions. Per-conversion rows: "
              "conversion_memory.csv.\n")
    (out_dir / "conversion_memory.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
