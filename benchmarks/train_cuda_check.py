"""The training evaluators on a CUDA GPU (run on a GPU machine): mixed precision, speed, Net2Net.

Generates the synthetic image folder (`latency-lab dataset synth`), then with `device=cuda`
(mixed precision is on by default there): `train:` of mbconv-tiny at 64 and 128 px (accuracy
should rise with resolution, as on the CPU), `train:` of EfficientNet-B0 at 224 px for one
epoch (images/s of a real-size network), and `net2net:` of one width step of mbconv-tiny from
its trained baseline. Each step is skipped once --budget-s is spent. Writes
train_cuda_check.json under --out; the cache (weights, checkpoints) goes to a temporary folder.
Usage: python benchmarks/train_cuda_check.py --out DIR [--budget-s 150] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=150.0)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of this script")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="train-cuda-"))
    os.environ.setdefault("LATENCY_LAB_CACHE", str(work / "cache"))
    import torch

    from latency_lab.network import presets
    from latency_lab.cli.app import main as cli
    from latency_lab.fileio import write_atomic
    from latency_lab.search.evaluators import Step, parse_evaluator
    from latency_lab.search.scaling import WIDTH, rbis_step

    t0 = time.perf_counter()
    data = work / "synth"
    cli(["dataset", "synth", "--out", str(data), "--per-class", str(args.per_class),
         "--size", "128"])
    synth_s = time.perf_counter() - t0
    start = time.perf_counter()   # --budget-s counts the trainings only
    rows: list[dict] = []
    opts = f"epochs={args.epochs},device={args.device},workers=8,threads=8"

    def run(label, text, spec, res, parent=None, step=None):
        if time.perf_counter() - start > args.budget_s:
            rows.append({"run": label, "skipped": "budget spent"})
            return None
        ev = parse_evaluator(text)
        req = ev.request(spec, res, parent, step)
        t0 = time.perf_counter()
        r = ev.evaluate(req)
        row = {"run": label, "evaluator": ev.describe(), "network": spec.name,
               "resolution": res, "top1": r.value, "ci": r.ci,
               "seconds": time.perf_counter() - t0,
               "images_per_s": r.details.get("images_per_s"), "details": r.details}
        rows.append(row)
        print(f"{label}: top-1 {r.value:.2f}% {r.ci}, {row['seconds']:.1f} s, "
              f"{row['images_per_s']} images/s", flush=True)
        return req

    tiny = presets.get("mbconv-tiny")
    for res in (64, 128):
        run(f"train tiny @{res}", f"train:{data},{opts}", tiny, res)
    b0 = presets.get("efficientnet-b0")
    run("train b0 @224, 1 epoch", f"train:{data},epochs=1,warmup=0.5,device={args.device},workers=8,"
        f"threads=8,batch=128", b0, 224)
    n2n = (f"net2net:{data},epochs=2,base_epochs={args.epochs},device={args.device},workers=8,"
           "threads=8")
    base_req = run("net2net baseline tiny @128", n2n, tiny, 128)
    if base_req is not None:
        child, _ = rbis_step(tiny, tiny, (0,) * len(tiny.stages), WIDTH, (2, 3))
        run("net2net width step w2+3 @128", n2n, child, 128, base_req, Step(WIDTH, (2, 3)))
    write_atomic(args.out / "train_cuda_check.json", json.dumps(
        {"gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "none",
         "torch": torch.__version__,
         "synth_seconds": synth_s, "seconds": time.perf_counter() - start, "rows": rows},
        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
