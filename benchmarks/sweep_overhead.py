"""The sweep's wall time over its recorded inference time, with and without longer visits
where samples are cheap (issue 26: 1.17-1.18x with one warm-up run per 8 recorded runs;
target < 1.10x at equal CI).

Sweeps efficientnet-b0 on the cpu device, alternating two protocols, each sweep in a fresh
store (nothing reused), the model built before the clock starts:

- A: the protocol as it was (`min_visit_s` 0: 8 runs a visit, each after one warm-up run);
- B, C, ...: visits of at least each `--min-visit-s` where samples are cheap (more runs after
  each warm-up, so fewer interpreter switches per recorded run; `Protocol.min_visit_s`);
- W (`--no-warmup`): 8 runs a visit, no warm-up run after a switch (`warmup_per_visit` 0; a
  point's first visit in the process keeps its 3). Whether that warm-up buys anything is
  measured on the sweeps themselves: the first recorded run of each visit against the visit's
  other runs (`first_run_ratio`: the median over visits of first / median of the rest, per
  point, then over points). Under A the first recorded run follows a warm-up; under W it is
  the first run after the switch, so W's ratio less A's is the warm-up's effect.

Both stop each point at the same CI target (or the same time cap), so they are compared at
equal CI: wall time, recorded inference time and their ratio, time spent inside the device's
`sample` calls (warm-ups and resizes included), rounds, samples, the CIs reached, and how far
the A and B medians agree. The load average is recorded before and after each sweep (a
shared 2-core machine: compare A and B only within a run, as they alternate).

Usage: python benchmarks/sweep_overhead.py [--resolutions 160:400:8] [--pairs 2]
           [--min-visit-s [0.4 1.0 ...]] [--no-warmup] [--ci-target-pct 1] [--time-cap-s 900] [--tag T]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from sweep_benchmark import TimedDevice  # noqa: E402  (the wrapper that times `sample`)

from latency_lab.measure.api import get_device  # noqa: E402
from latency_lab.measure.protocol import Protocol, measure_points  # noqa: E402
from latency_lab.measure.store import Store  # noqa: E402
from latency_lab.network import presets  # noqa: E402
from latency_lab.sweeps.run import parse_resolutions, to_frame, write_csv  # noqa: E402


def one_sweep(spec, grid, protocol: Protocol, store_path: Path) -> tuple:
    device = TimedDevice(get_device("cpu"))
    device.prepare(spec, grid)           # the model is made before the clock starts
    load0 = os.getloadavg()[0]
    with Store(store_path) as store:
        t0 = time.perf_counter()
        ms = measure_points(device, [(spec, r) for r in grid], store, protocol)
        wall = time.perf_counter() - t0
    frame = to_frame(ms)
    ratios = []
    k = protocol.runs_per_visit
    for m in ms:   # visits of k runs each (min_visit_s 0), in the order they were taken
        x = list(m.samples_ms)
        per = [x[i] / statistics.median(x[i + 1:i + k]) for i in range(0, len(x) - k + 1, k)]
        if per and not protocol.min_visit_s:
            ratios.append(statistics.median(per))
    inference = sum(sum(m.samples_ms) for m in ms) / 1000
    half = frame["ci_halfwidth_pct"]
    return frame, {
        "wall_s": round(wall, 1), "recorded_inference_s": round(inference, 1),
        "overhead": round(wall / inference, 4),
        "inside_sample_calls_s": round(device.sample_s, 1),
        "samples": int(frame["n_samples"].sum()),
        "rounds_median": float(frame["n_rounds"].median()),
        "median_ci_halfwidth_pct": round(float(half.median()), 3),
        "max_ci_halfwidth_pct": round(float(half.max()), 3),
        "stop_reasons": {str(k): int(v) for k, v in frame["stop_reason"].value_counts().items()},
        "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
        "first_run_ratio": round(statistics.median(ratios), 4) if ratios else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="160:400:8")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--min-visit-s", type=float, nargs="*", default=[0.4])
    ap.add_argument("--no-warmup", action="store_true",
                    help="also W: no warm-up run after a switch (warmup_per_visit 0)")
    ap.add_argument("--ci-target-pct", type=float, default=1.0)
    ap.add_argument("--time-cap-s", type=float, default=900)
    ap.add_argument("--tag", default="")
    ap.add_argument("--csv-dir", type=Path, default=None,
                    help="also write each sweep's CSV here")
    args = ap.parse_args()
    spec = presets.get("efficientnet-b0")
    grid = parse_resolutions(args.resolutions)
    a = Protocol(ci_target_pct=args.ci_target_pct, time_cap_s=args.time_cap_s,
                 warmup_per_visit=1)    # the protocol as it was: one warm-up after each switch
    protocols = [("A", a)] + [(chr(ord("B") + i), replace(a, min_visit_s=v))
                              for i, v in enumerate(args.min_visit_s)]
    if args.no_warmup:
        protocols.append(("W", replace(a, warmup_per_visit=0)))
    labels = [label for label, _ in protocols]
    runs: list[dict] = []
    frames = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            for label, proto in protocols:
                frame, fig = one_sweep(spec, grid, proto, Path(tmp) / f"{label}{pair}.sqlite")
                fig.update(protocol=label, pair=pair, min_visit_s=proto.min_visit_s,
                           warmup_per_visit=proto.warmup_per_visit)
                runs.append(fig)
                frames[(label, pair)] = frame
                print(json.dumps(fig), flush=True)
                if args.csv_dir:
                    write_csv(frame, args.csv_dir / f"sweep_overhead_{label}{pair}{args.tag}.csv")
    agree = []
    for pair in range(args.pairs):
        fa = frames[("A", pair)]
        for label in labels[1:]:
            fb = frames[(label, pair)]
            rel = (fa["latency_ms"] - fb["latency_ms"]).abs() / fa["latency_ms"]
            overlap = (fa["ci_low_ms"] <= fb["ci_high_ms"]) & (fb["ci_low_ms"] <= fa["ci_high_ms"])
            agree.append({"pair": pair, "vs": label,
                          "median_abs_diff_pct": round(100 * float(rel.median()), 2),
                          "cis_overlap": int(overlap.sum()), "points": len(rel)})
    summary = {}
    for label in labels:
        mine = [r for r in runs if r["protocol"] == label]
        summary[label] = {k: statistics.median(r[k] for r in mine)
                          for k in ("overhead", "wall_s", "median_ci_halfwidth_pct", "samples",
                                    "rounds_median")}
    out = {"grid": args.resolutions, "ci_target_pct": args.ci_target_pct,
           "time_cap_s": args.time_cap_s, "min_visit_s": args.min_visit_s, "runs": runs,
           "agreement": agree, "summary": summary, "cpu_count": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M")}
    lines = [f"# sweep overhead: wall / recorded inference time, efficientnet-b0 {args.resolutions}"
             f" on the cpu device{' ' + args.tag if args.tag else ''}", "",
             "A: 8 runs a visit after one warm-up; " + "; ".join(
                 f"{label}: visits of at least {p.min_visit_s:g} s where samples are cheap"
                 if p.min_visit_s else f"{label}: 8 runs a visit, no warm-up after a switch"
                 for label, p in protocols[1:])
             + f". CI target +-{args.ci_target_pct:g}%, time cap "
             f"{args.time_cap_s:g} s; each sweep in a fresh store, alternating; {out['date']}.", "",
             "| sweep | overhead | wall s | recorded s | inside sample() s | samples | rounds "
             "(median) | median CI +-% | widest | stopped | load before / after | first run / rest |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['protocol']}{r['pair']} | {r['overhead']:.3f}x | {r['wall_s']} | "
                     f"{r['recorded_inference_s']} | {r['inside_sample_calls_s']} | "
                     f"{r['samples']} | {r['rounds_median']:g} | "
                     f"{r['median_ci_halfwidth_pct']:.2f} | {r['max_ci_halfwidth_pct']:.2f} | "
                     f"{', '.join(f'{k} {v}' for k, v in r['stop_reasons'].items())} | "
                     f"{r['load_before']} / {r['load_after']} | {r['first_run_ratio']} |")
    lines += ["", "Medians: " + "; ".join(
        f"{k}: overhead {v['overhead']:.3f}x, wall {v['wall_s']:.0f} s, median CI "
        f"+-{v['median_ci_halfwidth_pct']:.2f}%, {v['samples']:.0f} samples"
        for k, v in summary.items()),
        "Agreement with A: " + "; ".join(
            f"{g['vs']}{g['pair']}: median |diff| {g['median_abs_diff_pct']}%, CIs overlap at "
            f"{g['cis_overlap']}/{g['points']}" for g in agree)]
    text = "\n".join(lines) + "\n"
    print(text)
    bench = ROOT / "results" / "benchmarks"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / f"sweep_overhead{args.tag}.md").write_text(text)
    (bench / f"sweep_overhead{args.tag}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
