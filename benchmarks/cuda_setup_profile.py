"""Where the cuda driver's per-shape set-up time goes (run on a GPU machine).

The first H100 run of benchmarks/cuda_sweep.py spent 1.1 to 4.7 s per new input shape in
set-up, also with cuDNN autotuning off. This times, per configuration and for four new shapes
in a row, each part of a set-up on its own: the first forward at the
new shape, the second, the mean of three more, and a CUDA-graph capture; configurations: fp16
and fp32, batch 1 and 256, autotuning on and off, channels-last and NCHW, and cuDNN disabled
(torch's own kernels) as the control. cuDNN caches its plans per process and shape, so each
configuration gets shapes no earlier one used (the first run reused 224..236 for all of them,
and every configuration after the first found the plans built). Writes
cuda_setup_profile.json under --out.
Usage: python benchmarks/cuda_setup_profile.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CONFIGS = [  # precision, batch, cudnn.benchmark, channels_last, cudnn enabled
    ("fp16", 1, True, True, True), ("fp16", 1, False, True, True),
    ("fp16", 256, False, True, True), ("fp16", 256, True, True, True),
    ("fp32", 256, False, True, True), ("fp16", 256, False, False, True),
    ("fp16", 256, False, True, False),
]
def resolutions(k: int) -> tuple[int, ...]:
    """Four shapes of their own for configuration k (the warm-up at 160 px is shared)."""
    base = 168 + 16 * k
    return (base, base + 4, base + 8, base + 12)


def profile(torch, model, batch, res, dtype, channels_last) -> dict:
    def timed(fn) -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    x = torch.rand(batch, 3, res, res, device="cuda", dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    row = {"resolution": res, "first_s": timed(lambda: model(x)),
           "second_s": timed(lambda: model(x)),
           "next3_mean_s": timed(lambda: [model(x) for _ in range(3)]) / 3}
    graph = torch.cuda.CUDAGraph()

    def capture() -> None:
        with torch.cuda.graph(graph):   # captures on a side stream of its own
            model(x)

    row["capture_s"] = timed(capture)
    row["replay_s"] = timed(graph.replay)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    from latency_lab.network import presets
    from latency_lab.models.build_torch import build_torch
    from latency_lab.fileio import write_atomic

    spec = presets.get("efficientnet-b0")
    out = []
    for k, (precision, batch, bench, cl, enabled) in enumerate(CONFIGS):
        dtype = torch.float16 if precision == "fp16" else torch.float32
        torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled = bench, enabled
        model = build_torch(spec).to("cuda", dtype)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            model(torch.rand(batch, 3, 160, 160, device="cuda", dtype=dtype)
                  .to(memory_format=torch.channels_last if cl else torch.contiguous_format))
            rows = [profile(torch, model, batch, r, dtype, cl) for r in resolutions(k)]
        cfg = {"precision": precision, "batch": batch, "cudnn_benchmark": bench,
               "channels_last": cl, "cudnn_enabled": enabled, "rows": rows}
        out.append(cfg)
        print(f"{precision} b{batch} bench={bench} cl={cl} cudnn={enabled}: " + "; ".join(
            f"{r['resolution']}: first {r['first_s']:.3f} s, 2nd {r['second_s']:.4f}, "
            f"steady {r['next3_mean_s']:.4f}, capture {r['capture_s']:.3f}" for r in rows),
            flush=True)
        del model
        torch.cuda.empty_cache()
    write_atomic(args.out / "cuda_setup_profile.json",
                 json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                             "cudnn": torch.backends.cudnn.version(), "configs": out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
