"""Zen-Score on a CUDA GPU against the same evaluation on the CPU (run on a GPU machine).

For EfficientNet-B0, B1 and B2 at their own resolutions: the score with `device=cpu` and with
`device=cuda` (the inputs are drawn on the CPU in both, so the scores differ only by floating-
point order: the difference is printed), and seconds per evaluation on the GPU (a warm-up,
then --runs timed evaluations). Writes zen_cuda_check.json under --out.
Usage: python benchmarks/zen_cuda_check.py --out DIR [--runs 3] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

NETWORKS = ("efficientnet-b0", "efficientnet-b1", "efficientnet-b2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    import torch

    from latency_lab.network import presets
    from latency_lab.fileio import write_atomic
    from latency_lab.search.evaluators import parse_evaluator

    rows = []
    for name in NETWORKS:
        spec = presets.get(name)
        row = {"network": name, "resolution": spec.resolution}
        for device in ("cpu", "cuda"):
            ev = parse_evaluator(f"zen,batch={args.batch},device={device}")
            t0 = time.perf_counter()
            row[f"{device}_score"] = ev.evaluate(ev.request(spec, spec.resolution)).value
            row[f"{device}_first_s"] = time.perf_counter() - t0
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                ev.evaluate(ev.request(spec, spec.resolution))
                times.append(time.perf_counter() - t0)
            row[f"{device}_s"] = times
        row["abs_diff"] = abs(row["cpu_score"] - row["cuda_score"])
        print(f"{name} @ {spec.resolution}: cpu {row['cpu_score']:.6f}, cuda "
              f"{row['cuda_score']:.6f} (|diff| {row['abs_diff']:.2e}); s/evaluation cpu "
              f"{statistics.median(row['cpu_s']):.3f}, cuda {statistics.median(row['cuda_s']):.3f}"
              f" (first {row['cuda_first_s']:.2f})", flush=True)
        rows.append(row)
    figures = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "batch": args.batch, "rows": rows}
    write_atomic(args.out / "zen_cuda_check.json", json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
