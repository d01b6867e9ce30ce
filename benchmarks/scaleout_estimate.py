"""Simulated wall time of the thesis's B0 -> B1 RBIS search on 1 vs N GPUs (default 10).

Not a run on a cluster (none was available): a schedule of the search's evaluation batches,
from measured per-candidate times.

1. The batches: RBIS from EfficientNet-B0 to the B1 budget at the thesis's candidate
   resolutions 240, 256, 272, 288 px, K = 10, with the SYNTHETIC analytic latency and
   accuracy of benchmarks/analytic_sources.py (no recorded Pixel2 table or trained accuracies
   exist here). Which candidates are evaluated in which iteration comes from that run; the
   search runs iteration after iteration, resolution after resolution, and evaluates one
   iteration's candidates as one batch: exactly what `--executor` parallelises.
2. The cost of a candidate: the measured time per evaluation of the baseline, scaled by the
   candidate's MACs over the baseline's (training throughput ~ 1 / MACs: a model, not a
   measurement). Two measured baselines are used (results/cuda, NVIDIA H100 80GB):
   - full training, EfficientNet-B0 at 224 px: 208 images/s with mixed precision (one epoch of
     a 1000-image set, first passes at new shapes and data loading included: a pessimistic
     figure). One candidate = --epochs x --images / throughput;
   - Zen-Score (batch 16): 0.19-0.25 s per evaluation for B0..B2 (0.22 s taken for B0).
3. The schedule: batches in order; within a batch, longest candidate first onto the GPU that
   frees first (LPT); plus the measured Ray round trip per task. On one GPU the wall time is
   the sum of all candidates. Also shown: the four resolutions searched side by side on the
   shared N GPUs (not what the search does today; a bound on what that change would give),
   and the schedule in units of one B0 training calibrated to the thesis's own week.

    PYTHONPATH=. python benchmarks/scaleout_estimate.py [--gpus 10] [--epochs 350]
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "results" / "benchmarks" / "scaleout_estimate"
H100_B0_TRAIN_IMAGES_PER_S = 208.0     # results/cuda/README.md, training on cuda
H100_B0_ZEN_S = 0.22                   # results/cuda/README.md: 0.19-0.25 s for B0..B2
IMAGENET_TRAIN_IMAGES = 1_281_167
THESIS_WALL_S = 7 * 86400              # "about a week" for B0 -> B1, 10 candidates at once


def search_batches(resolutions, k):
    """[(resolution, [MACs of each candidate evaluated in one batch]), ...] in search order."""
    import os

    os.chdir(ROOT)
    from latency_lab.network import presets
    from latency_lab.network.complexity import macs
    from latency_lab.search.evaluators import evaluate_locally, parse_evaluator
    from latency_lab.search.rbis import run_rbis
    from latency_lab.search.sources import parse_latency_source

    b0, b1 = presets.get("efficientnet-b0"), presets.get("efficientnet-b1")
    source = parse_latency_source("py:benchmarks.analytic_sources:latency_ms")
    ev = parse_evaluator("py:benchmarks.analytic_sources:accuracy")
    batches = []

    def recording(evaluator, requests):
        batches.append((requests[0].resolution if requests else 0,
                        [macs(r.spec, r.resolution) for r in requests]))
        return evaluate_locally(evaluator, requests)

    budget = source.latency_ms(b1, b1.resolution)
    run_rbis(b0, budget, resolutions, source, ev, k=k, run=recording)
    return [b for b in batches if b[1]], macs(b0, 224)


def makespan(costs, gpus, overhead_s):
    """LPT: longest first onto the GPU that frees first."""
    free = [0.0] * gpus
    for c in sorted(costs, reverse=True):
        t = heapq.heappop(free) if len(free) == gpus else 0.0
        heapq.heappush(free, t + c + overhead_s)
    return max(free)


def side_by_side(chains, gpus, overhead_s):
    """Each resolution's batches in order, the resolutions at once on shared GPUs: a batch
    starts when its predecessor ended; its tasks take the GPUs that free first."""
    free = [0.0] * gpus
    ready = {r: 0.0 for r in chains}
    pos = {r: 0 for r in chains}
    while any(pos[r] < len(chains[r]) for r in chains):
        r = min((r for r in chains if pos[r] < len(chains[r])), key=lambda r: ready[r])
        ends = []
        for c in sorted(chains[r][pos[r]], reverse=True):
            t = max(heapq.heappop(free), ready[r])
            heapq.heappush(free, t + c + overhead_s)
            ends.append(t + c + overhead_s)
        ready[r], pos[r] = max(ends), pos[r] + 1
    return max(ready.values())


def estimate(batches, base_macs, per_b0_s, gpus, overhead_s):
    costs = [[per_b0_s * m / base_macs for m in b] for _, b in batches]
    one = sum(map(sum, costs))
    many = sum(makespan(c, gpus, overhead_s) for c in costs)
    chains: dict[int, list] = {}
    for (r, _), c in zip(batches, costs):
        chains.setdefault(r, []).append(c)
    return {"one_gpu_s": one, "n_gpus_s": many, "speedup": one / many,
            "n_gpus_resolutions_side_by_side_s": side_by_side(chains, gpus, overhead_s),
            "candidates": sum(map(len, costs)), "batches": len(costs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=10)
    ap.add_argument("--epochs", type=float, default=350, help="epochs per candidate training "
                    "(EfficientNet's ImageNet recipe: 350; the thesis does not state its own)")
    ap.add_argument("--images", type=int, default=IMAGENET_TRAIN_IMAGES)
    ap.add_argument("--resolutions", default="240,256,272,288")
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--ray-round-trip-ms", type=float, default=None,
                    help="per-task overhead (default: the executor benchmark's measurement)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    overhead_ms = args.ray_round_trip_ms
    bench = ROOT / "results" / "benchmarks" / "executor_benchmark.json"
    if overhead_ms is None and bench.exists():
        overhead_ms = json.loads(bench.read_text())["overhead"]["ray"][
            "round_trip_ms_median"]
    overhead_s = (overhead_ms or 0.0) / 1000
    batches, base = search_batches([int(r) for r in args.resolutions.split(",")],
                                   args.candidates)
    train_s = args.epochs * args.images / H100_B0_TRAIN_IMAGES_PER_S
    report = {"gpus": args.gpus, "epochs": args.epochs, "images": args.images,
              "ray_overhead_ms": overhead_ms, "per_resolution_batches": {}, "cases": {}}
    for r, b in batches:
        report["per_resolution_batches"].setdefault(str(r), []).append(len(b))
    for name, per_b0 in (("full training (H100, 208 images/s for B0)", train_s),
                         ("Zen-Score (H100, 0.22 s for B0)", H100_B0_ZEN_S)):
        report["cases"][name] = {"b0_candidate_s": per_b0,
                                 **estimate(batches, base, per_b0, args.gpus, overhead_s)}
    # The same schedule in units of one B0 training, calibrated to the thesis's own wall time
    # (its per-candidate recipe and TPU throughput are not stated; the H100 figure is not a
    # steady state): what one candidate must have cost, and what one accelerator would take.
    train = next(iter(report["cases"].values()))
    units = train["n_gpus_s"] / train["b0_candidate_s"]
    report["thesis_calibrated"] = {
        "thesis_wall_s": THESIS_WALL_S, "n_gpus_b0_trainings": units,
        "one_gpu_b0_trainings": train["one_gpu_s"] / train["b0_candidate_s"],
        "implied_b0_candidate_s": THESIS_WALL_S / units,
        "one_accelerator_s": THESIS_WALL_S * train["speedup"]}
    from latency_lab.fileio import write_atomic

    out = Path(args.out)
    write_atomic(out.with_suffix(".json"), json.dumps(report, indent=2))
    write_atomic(out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    return 0


def _t(s: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.1f} s"


def markdown(r: dict) -> str:
    lines = [f"# Simulated B0 -> B1 RBIS search: 1 GPU vs {r['gpus']} GPUs\n",
             "Batches from an RBIS run on SYNTHETIC latency and accuracy (analytic model), "
             "per-candidate times from measurements on an H100 scaled by MACs; see "
             "benchmarks/scaleout_estimate.py. Batches per resolution (candidates evaluated "
             "per iteration): " + "; ".join(f"{k} px: {v}" for k, v in
                                            r["per_resolution_batches"].items()) + ".\n",
             f"Per-task overhead {r['ray_overhead_ms']} ms (Ray round trip, measured). "
             f"Training: {r['epochs']:g} epochs of {r['images']:,} images per candidate.\n",
             f"| evaluation | B0 candidate | candidates | 1 GPU | {r['gpus']} GPUs | speed-up |"
             f" {r['gpus']} GPUs, resolutions side by side |",
             "|---|---|---|---|---|---|---|"]
    for name, c in r["cases"].items():
        lines.append(f"| {name} | {_t(c['b0_candidate_s'])} | {c['candidates']} | "
                     f"{_t(c['one_gpu_s'])} | {_t(c['n_gpus_s'])} | {c['speedup']:.2f}x | "
                     f"{_t(c['n_gpus_resolutions_side_by_side_s'])} |")
    t = r.get("thesis_calibrated")
    if t:
        lines.append(f"\nIn units of one B0 training the schedule is "
                     f"{t['one_gpu_b0_trainings']:.1f} on 1 GPU and "
                     f"{t['n_gpus_b0_trainings']:.1f} on {r['gpus']}. Calibrated to the "
                     f"thesis's own figure ({_t(t['thesis_wall_s'])} for B0 -> B1 with "
                     f"{r['gpus']} candidates at once): one B0 candidate took about "
                     f"{_t(t['implied_b0_candidate_s'])} there, and one accelerator would take "
                     f"about {_t(t['one_accelerator_s'])}. The H100 training figure (208 "
                     f"images/s) is one epoch of 1000 images including first passes at new "
                     f"shapes and data loading, not a steady state: the absolute times for "
                     f"{r['epochs']:g} epochs are upper bounds; the speed-up does not "
                     f"depend on it.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
