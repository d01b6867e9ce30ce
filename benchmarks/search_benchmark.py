"""Benchmark: RBIS from EfficientNet-B0 to the B1 budget over 240, 256, 272, 288 px.

Reports the search's wall time (median and range over --repeats fresh runs, no cache) and
the number of latency reads and accuracy evaluations, then runs the three baselines on the
same sources and writes the figures under results/benchmarks/search/.

    PYTHONPATH=. python benchmarks/search_benchmark.py [--latency table:PATH] [--accuracy ...]

The budget is EfficientNet-B1's latency (the preset at 240 px) under the same latency source.
Without --latency, latency comes from the SYNTHETIC analytic MACs model in
benchmarks/analytic_sources.py (no recorded latency table existed on this branch when the
benchmark was written); accuracy always comes from a synthetic function unless --accuracy
names a recorded table. Wall time and evaluation counts are what this benchmark measures; its
accuracies and latencies are not results about any network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANALYTIC_LATENCY = "py:benchmarks.analytic_sources:latency_ms"
ANALYTIC_ACCURACY = "py:benchmarks.analytic_sources:accuracy"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", default=ANALYTIC_LATENCY)
    ap.add_argument("--accuracy", default=ANALYTIC_ACCURACY)
    ap.add_argument("--resolutions", default="240,256,272,288")
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "search")
    args = ap.parse_args()

    import os

    os.chdir(ROOT)   # py: modules are imported relative to the current directory
    from latency_lab.network import presets
    from latency_lab.search.plots import plot_compare, plot_paths
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.fileio import write_atomic
    from latency_lab.search.rbis import Cache, run_rbis, write_trace
    from latency_lab.search.scaling import FAMILIES, scale_to_budget
    from latency_lab.search.sources import parse_latency_source

    b0, b1 = presets.get("efficientnet-b0"), presets.get("efficientnet-b1")
    resolutions = [int(r) for r in args.resolutions.split(",")]
    source = parse_latency_source(args.latency)
    evaluator = parse_evaluator(args.accuracy)
    budget = source.latency_ms(b1, b1.resolution)
    synthetic = args.latency == ANALYTIC_LATENCY
    print(f"latency source: {source.describe()}"
          + ("  [SYNTHETIC analytic MACs model: no recorded table on this branch]" if synthetic
             else ""))
    print(f"accuracy: {evaluator.describe()}"
          + ("  [SYNTHETIC]" if args.accuracy == ANALYTIC_ACCURACY else ""))
    print(f"budget: efficientnet-b1 at {b1.resolution} px = {budget:.3f} ms")

    walls, result = [], None
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:   # fresh state: nothing cached
            t0 = time.perf_counter()
            result = run_rbis(b0, budget, resolutions, source, evaluator, k=args.candidates,
                              out_dir=tmp)
            walls.append(time.perf_counter() - t0)
    d = result.to_dict()
    c = d["counts"]
    m = d["metric"]
    print(f"RBIS wall time: median {statistics.median(walls):.3f} s over {len(walls)} fresh runs "
          f"(min {min(walls):.3f}, max {max(walls):.3f})")
    print(f"latency reads: {c['latency_reads']} (distinct networks x resolutions), "
          f"evaluations: {c['evaluations']}, cache hits: latency "
          f"{c['latency_cache_hits']}, value {c['value_cache_hits']}")
    for pr in d["per_resolution"]:
        if pr["feasible"]:
            print(f"  {pr['resolution']}: {m} {pr[m]:.3f} at {pr['latency_ms']:.3f} ms, "
                  f"{pr['iterations']} steps, widths {pr['widths']} depths {pr['depths']}")
        else:
            print(f"  {pr['resolution']}: infeasible ({pr['reason']})")
    print(f"winner: {d['resolution']} px, {m} {d[m]:.3f} at {d['latency_ms']:.3f} ms")

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "result.json", json.dumps(d, indent=2))
    write_trace(result.trace, out / "trace.csv", m)
    plot_paths(d, result.trace, out / "paths.png")

    cache = Cache(source, evaluator)   # baselines: same sources, their own count
    lat = lambda s, r: cache.latencies([(s, r)])[0]  # noqa: E731
    rows = [{"method": "baseline", "label": "efficientnet-b0", "resolution": b0.resolution,
             "latency_ms": lat(b0, b0.resolution),
             m: cache.value_of(b0, b0.resolution)},
            {"method": "rbis", "label": "RBIS", "resolution": d["resolution"],
             "latency_ms": d["latency_ms"], m: d[m]}]
    baselines = {}
    for method, family in FAMILIES.items():
        t0 = time.perf_counter()
        res = scale_to_budget(family, b0, budget, lat)
        wall = time.perf_counter() - t0
        acc = cache.value_of(res.spec, res.resolution)
        rows.append({"method": method, "label": f"{method} ({family.label})",
                     "resolution": res.resolution, "latency_ms": res.latency_ms, m: acc})
        baselines[method] = {**{k: v for k, v in res.to_dict().items() if k != "network"},
                             m: acc, "latency_reads": len(res.probes), "wall_s": wall}
        print(f"{method:9s} {family.parameter}={res.x:.2f}: {res.resolution} px, "
              f"{res.latency_ms:.3f} ms, {m} {acc:.3f}, {len(res.probes)} latency reads, "
              f"{wall:.3f} s")
    plot_compare(rows, budget, out / "compare.png", metric=m, metric_label=d["metric_label"],
                 unit=evaluator.unit, title="EfficientNet-B0 scaled to the B1 budget",
                 footnote=f"latency: {source.describe()}{' (synthetic)' if synthetic else ''}   "
                          f"accuracy: {evaluator.describe()}")
    figures = {"latency_source": source.describe(), "latency_synthetic": synthetic,
               "accuracy": evaluator.describe(), "budget_ms": budget, "resolutions": resolutions,
               "candidates_k": args.candidates, "wall_s": walls,
               "wall_s_median": statistics.median(walls), "counts": c,
               "winner": {k: d[k] for k in ("resolution", m, "latency_ms")},
               "baselines": baselines, "compare": rows}
    write_atomic(out / "search_benchmark.json", json.dumps(figures, indent=2))
    print(f"wrote {out}/search_benchmark.json, result.json, trace.csv, paths.png, compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
