"""Benchmark of the measurement protocol on the host CPU (issue "Latency lab core").

1. Sweeps efficientnet-b0 over 160:400:4 on the cpu device twice, back to back, each into a
   fresh store, and prints: wall time of each sweep, the share of it spent inside recorded
   inference calls (overhead = wall / recorded inference time), how many points of the two
   sweeps agree within 2% and within their CIs, and the peak memory of the process.
2. Measures efficientnet-b0, -b1, -b2 and -rbis-b1 at 224/240/256/260 (interleaved) and
   prints the latency ratios B1/B0, B2/B0, RBIS-B1/B0 (each at its own resolution) beside the
   thesis's Pixel2 ratios.

Writes the sweeps under results/cpu/ and the figures under results/benchmarks/.
Usage: python benchmarks/sweep_benchmark.py [--resolutions 160:400:4] [--skip-presets]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from latency_lab.network import presets
from latency_lab.measure.api import get_device
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.measure.store import Store
from latency_lab.sweeps.run import parse_resolutions, to_frame, write_csv

ROOT = Path(__file__).resolve().parents[1]
# Pixel2 latencies of the thesis (rbis-method.md, Table 5.2), ms.
THESIS_PIXEL2_MS = {"efficientnet-b0": 164.978, "efficientnet-b1": 277.396,
                    "efficientnet-b2": 378.36, "efficientnet-b0-rbis-b1": 272.98}


class TimedDevice:
    """Wraps a device to add up the time spent inside `sample` (warm-up and resize included)."""

    def __init__(self, device):
        self.device, self.sample_s = device, 0.0

    def __getattr__(self, name):
        return getattr(self.device, name)

    def sample(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.device.sample(*args, **kwargs)
        finally:
            self.sample_s += time.perf_counter() - t0


def one_sweep(spec, grid, protocol, tag, tmp):
    device = TimedDevice(get_device("cpu"))
    device.prepare(spec, grid)  # conversion (cached) is not part of the sweep's wall time
    with Store(Path(tmp) / f"{tag}.sqlite") as store:
        t0 = time.perf_counter()
        ms = measure_points(device, [(spec, r) for r in grid], store, protocol)
        wall = time.perf_counter() - t0
    frame = to_frame(ms)
    inference_s = sum(sum(m.samples_ms) for m in ms) / 1000
    return frame, {"wall_s": wall, "recorded_inference_s": inference_s,
                   "inside_sample_calls_s": device.sample_s,
                   "overhead": wall / inference_s, "points": len(ms),
                   "samples": int(frame["n_samples"].sum()),
                   "stop_reasons": frame["stop_reason"].value_counts().to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolutions", default="160:400:4")
    ap.add_argument("--skip-presets", action="store_true")
    ap.add_argument("--time-cap-s", type=float, default=900)
    ap.add_argument("--keep-stores", type=Path, default=None,
                    help="keep the sweeps' SQLite stores (raw samples) in this directory")
    ap.add_argument("--tag", default="", help="suffix of the files written under results/")
    args = ap.parse_args()
    grid = parse_resolutions(args.resolutions)
    protocol = Protocol(time_cap_s=args.time_cap_s)
    b0 = presets.get("efficientnet-b0")
    out_dir, bench_dir = ROOT / "results" / "cpu", ROOT / "results" / "benchmarks"
    bench_dir.mkdir(parents=True, exist_ok=True)
    figures: dict = {"protocol": protocol.to_dict(), "grid": args.resolutions}
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep_stores:
            args.keep_stores.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep_stores)
        a, fa = one_sweep(b0, grid, protocol, "a", tmp)
        b, fb = one_sweep(b0, grid, protocol, "b", tmp)
        write_csv(a, out_dir / f"efficientnet-b0_sweep_a{args.tag}.csv")
        write_csv(b, out_dir / f"efficientnet-b0_sweep_b{args.tag}.csv")
        figures["sweep_a"], figures["sweep_b"] = fa, fb
        rel = (a["latency_ms"] - b["latency_ms"]).abs() / ((a["latency_ms"] + b["latency_ms"]) / 2)
        overlap = (a["ci_low_ms"] <= b["ci_high_ms"]) & (b["ci_low_ms"] <= a["ci_high_ms"])
        figures["agreement"] = {
            "within_2pct": int((rel <= 0.02).sum()), "points": len(rel),
            "share_within_2pct": float((rel <= 0.02).mean()),
            "cis_overlap": int(overlap.sum()),
            "median_abs_diff_pct": float(100 * rel.median()), "max_abs_diff_pct": float(100 * rel.max()),
            "median_ci_halfwidth_pct": float(pd.concat([a, b])["ci_halfwidth_pct"].median()),
        }
        if not args.skip_presets:
            names = list(THESIS_PIXEL2_MS)
            specs = [presets.get(n) for n in names]
            points = [(s, r) for s in specs for r in (224, 240, 256, 260)]
            device = get_device("cpu")
            with Store(Path(tmp) / "presets.sqlite") as store:
                ms = measure_points(device, points, store, protocol)
            frame = to_frame(ms)
            write_csv(frame, out_dir / "presets_224-260.csv")
            lat = {(m.network, m.resolution): m for m in ms}
            base = lat[("efficientnet-b0", 224)]
            ratios = []
            for s in specs[1:]:
                m = lat[(s.name, s.resolution)]
                ratios.append({"network": s.name, "resolution": s.resolution,
                               "latency_ms": m.latency_ms, "n_samples": m.stats.count,
                               "ci_halfwidth_pct": 100 * m.stats.ci_halfwidth_rel,
                               "ratio_to_b0_224": m.latency_ms / base.latency_ms,
                               "thesis_pixel2_ratio": THESIS_PIXEL2_MS[s.name]
                               / THESIS_PIXEL2_MS["efficientnet-b0"]})
            figures["ratios"] = {"b0_224_ms": base.latency_ms, "rows": ratios}
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (bench_dir / f"sweep_benchmark{args.tag}.json").write_text(json.dumps(figures, indent=2, default=str))
    print(report(figures))
    (bench_dir / f"sweep_benchmark{args.tag}.md").write_text(report(figures) + "\n")


def report(f: dict) -> str:
    lines = ["# sweep benchmark (cpu device, efficientnet-b0, %s)" % f["grid"], ""]
    for k in ("sweep_a", "sweep_b"):
        s = f[k]
        lines.append(f"{k}: wall {s['wall_s']:.1f} s, recorded inference {s['recorded_inference_s']:.1f} s, "
                     f"overhead {s['overhead']:.3f}x, {s['samples']} samples over {s['points']} points, "
                     f"stopped {s['stop_reasons']}")
    ag = f["agreement"]
    lines.append(f"agreement: {ag['within_2pct']}/{ag['points']} points within 2% "
                 f"({100 * ag['share_within_2pct']:.1f}%), CIs overlap at "
                 f"{ag['cis_overlap']}/{ag['points']}, "
                 f"median |diff| {ag['median_abs_diff_pct']:.2f}%, max {ag['max_abs_diff_pct']:.2f}%, "
                 f"median CI half-width {ag['median_ci_halfwidth_pct']:.2f}%")
    if "ratios" in f:
        lines.append(f"efficientnet-b0 @224: {f['ratios']['b0_224_ms']:.3f} ms")
        lines.append("| network | res | latency ms | n | CI +-% | ratio to B0@224 | thesis Pixel2 ratio |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in f["ratios"]["rows"]:
            lines.append(f"| {r['network']} | {r['resolution']} | {r['latency_ms']:.3f} | "
                         f"{r['n_samples']} | {r['ci_halfwidth_pct']:.2f} | "
                         f"{r['ratio_to_b0_224']:.3f} | {r['thesis_pixel2_ratio']:.3f} |")
    lines.append(f"peak RSS: {f['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
