"""Validation of the cuda driver on a real NVIDIA GPU (issue "Target-device drivers").

Sweeps efficientnet-b0 over 160:400:4 at batch 1 in fp32 and in fp16 on the `cuda` device
(channels-last, cudnn.benchmark, CUDA events), writes one CSV per precision and a plot of both
curves under results/cuda/, runs the jump detector on each curve when `latency_lab.jumps`
exists, and prints per precision: points, samples, median CI half-width, min/max latency and
the jumps found. It needs a CUDA GPU: elsewhere it stops with a one-line error and exit 2.

Usage: python benchmarks/cuda_sweep.py [--resolutions 160:400:4] [--store PATH]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "cuda"


def run_jump_detector(frame):
    """The project's jump detector on one curve, if this checkout has it; else None."""
    if importlib.util.find_spec("latency_lab.jumps") is None:
        return None
    jumps = importlib.import_module("latency_lab.jumps")
    for name in ("detect_jumps", "find_jumps", "detect"):
        fn = getattr(jumps, name, None)
        if callable(fn):
            return fn(frame)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="160:400:4")
    ap.add_argument("--store", type=Path, default=None, help="SQLite store (default: temporary)")
    args = ap.parse_args(argv)

    from latency_lab import presets
    from latency_lab.measure import DeviceError, get_device
    from latency_lab.protocol import Protocol
    from latency_lab.store import Store
    from latency_lab.sweep import parse_resolutions, run_sweep, write_csv

    spec = presets.get("efficientnet-b0")
    grid = parse_resolutions(args.resolutions)
    store_path = args.store or Path(tempfile.mkdtemp()) / "cuda.sqlite"
    frames = {}
    for precision in ("fp32", "fp16"):
        try:
            dev = get_device("cuda", precision=precision, batch_size=1)
        except DeviceError as exc:
            print(f"error: {exc} (benchmarks/cuda_sweep.py needs a CUDA GPU)", file=sys.stderr)
            return 2
        with dev:
            info = dev.info()
            frame = run_sweep(dev, spec, grid, Store(store_path), Protocol())
        path = write_csv(frame, OUT / f"{spec.name}_{precision}_b1.csv")
        frames[precision] = frame
        print(f"{precision}: {info.hardware}, {info.runtime_version}, driver "
              f"{info.extra.get('driver')}: {len(frame)} points, {int(frame['n_samples'].sum())} "
              f"samples, median CI half-width {frame['ci_halfwidth_pct'].median():.2f}%, latency "
              f"{frame['latency_ms'].min():.3f}..{frame['latency_ms'].max():.3f} ms -> {path}")
        jumps = run_jump_detector(frame)
        print(f"  jumps: {jumps if jumps is not None else 'latency_lab.jumps not in this checkout'}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for precision, frame in frames.items():
        ax.errorbar(frame["resolution"], frame["latency_ms"],
                    yerr=[frame["latency_ms"] - frame["ci_low_ms"],
                          frame["ci_high_ms"] - frame["latency_ms"]], fmt=".-", label=precision)
    ax.set_xlabel("input resolution (px)")
    ax.set_ylabel("median latency (ms), 95% CI")
    ax.set_title(f"{spec.name}, batch 1, cuda: {info.hardware}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / f"{spec.name}_cuda_b1.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
