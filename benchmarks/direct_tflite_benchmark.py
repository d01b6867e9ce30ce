"""Benchmark: the direct TFLite emitter against the Keras -> TFLite converter.

1. Build time: spec -> .tflite bytes for every preset, direct (median of --repeats calls in a
   warm process; the first call also imports the schema module, reported apart) and through
   the converter worker (`build_keras.tflite_path`, one conversion each, TensorFlow already
   imported in the worker).
2. Latency: both files of the presets and --random random scaled EfficientNet-B0 networks
   (up to 2 width and 1 depth steps per stage, as the LUT and the search scale them) at
   --resolutions, measured on the cpu device (LiteRT, XNNPACK, 1 thread) through the
   project's protocol in ONE run: every (network, builder, resolution) point is visited once
   per round in a shuffled order, so both files of a network share the machine's state; the
   drift model and the CI stopping rule apply as in a sweep. Per network and resolution the
   ratio direct / converted of the drift-corrected medians, with a 95% CI from a bootstrap
   over the rounds both points have (the same resampled rounds for both).

Target: spec -> bytes under 200 ms for B2 (median over the presets) vs ~6 s converting; every
latency ratio within 2%. The machine is shared: the load average is recorded with the figures.

`--control` adds an A/A control: a second interpreter of each file, measured in the same
rounds. Measured at load 9-12 (results/benchmarks/direct_tflite_benchmark.md and
direct_tflite_benchmark_control.md): direct / converted has median 1.007 over 50 points
(range 0.91..1.10, per-point CIs about +-3%), and
two interpreters of the SAME file differ as much (A/A 0.92..1.04, median |ratio - 1| 2.2%
against 1.3% for direct / converted); the networks furthest from 1 in the first run moved
or flipped sign in the second (w0022000: 0.92, then 1.12, while its direct file's A/A was
0.92). So what is left is a per-interpreter effect (where its arena and packed weights land)
plus the load, not the builder. On a quiet machine (load 0.1-1.0, `--random 4 --control --tag
_quiet`, results/benchmarks/direct_tflite_benchmark__quiet.md) the 2% bound holds: 20/20
ratios within 2%, median 0.999 (0.983..1.009), A/A median |ratio - 1| 0.7% against 0.6% for
direct / converted; its build step: B2 56 ms, median 34 ms over the presets, against 2.0-7.5 s
converting (direct_tflite_build__quiet.md).

    python benchmarks/direct_tflite_benchmark.py [--random 20] [--resolutions 224,256]

Writes results/benchmarks/direct_tflite_benchmark{_TAG}.{md,csv,json} and
direct_tflite_build{_TAG}.csv (an empty table with --skip-build).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latency_lab.network import presets
from latency_lab.models.build_tflite import emit_tflite, op_list
from latency_lab.cli.options import status_line
from latency_lab.devices.cpu import CpuDevice
from latency_lab.fileio import write_atomic
from latency_lab.network.scaling import random_scaled
from latency_lab.measure.api import Device, DeviceInfo, RunResult
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.network.spec import NetworkSpec
from latency_lab.measure.store import Store

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks"


@dataclass(frozen=True)
class Variant:
    """One builder's file of a network, as a point the protocol measures (the duck type of a
    NetworkSpec where the protocol and the store look)."""

    spec: NetworkSpec
    builder: str     # "direct" or "keras", "#2" for a second interpreter of the same file

    @property
    def name(self) -> str:
        return f"{self.spec.name} [{self.builder}]"

    @property
    def fingerprint(self) -> str:
        return f"{self.spec.fingerprint}-{self.builder}"

    def arch_dict(self) -> dict:
        return {"builder": self.builder, **self.spec.arch_dict()}


class PairDevice(Device):
    """The cpu device per variant: one emitting models, one converting them (and, for the A/A
    control, a second of each: another interpreter of the same file); a point says which."""

    name = "cpu-pair"

    def __init__(self, model_dir: str, variants: tuple[str, ...] = ("direct", "keras")):
        self.devices = {v: CpuDevice(builder=v.split("#")[0],
                                     model_dir=model_dir if v.startswith("keras") else None)
                        for v in variants}

    def info(self) -> DeviceInfo:
        base = self.devices["keras"].info()
        return DeviceInfo(name=self.name, hardware=base.hardware, runtime=base.runtime,
                          runtime_version=base.runtime_version, threads=base.threads,
                          extra={"pair": "direct+keras", **base.extra})

    def prepare(self, v: Variant, resolutions: list[int]) -> None:
        self.devices[v.builder].prepare(v.spec, resolutions)

    def sample(self, v: Variant, resolution: int, runs: int, warmup_runs: int = 1) -> RunResult:
        return self.devices[v.builder].sample(v.spec, resolution, runs, warmup_runs)

    def close(self) -> None:
        for d in self.devices.values():
            d.close()


def ratio_ci(direct, keras, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of drift-corrected medians and its 95% CI, bootstrapping the common rounds."""
    def by_round(m):
        x = np.asarray(m.samples_ms) / (np.asarray(m.drift) if m.drift else 1.0)
        r = np.asarray(m.rounds)
        return {k: x[r == k] for k in np.unique(r)}

    a, b = by_round(direct), by_round(keras)
    common = sorted(set(a) & set(b))
    point = float(np.median(np.concatenate([a[k] for k in common])) /
                  np.median(np.concatenate([b[k] for k in common])))
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(resamples):
        pick = rng.choice(common, len(common))
        ratios.append(np.median(np.concatenate([a[k] for k in pick])) /
                      np.median(np.concatenate([b[k] for k in pick])))
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return point, float(lo), float(hi)


def first_call_s() -> float:
    """spec -> bytes for B2 in a fresh process (schema import included)."""
    code = ("import time; t = time.perf_counter(); from latency_lab.network import presets; "
            "from latency_lab.models.build_tflite import emit_tflite; "
            "emit_tflite(presets.get('efficientnet-b2')); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def build_times(model_dir: Path, repeats: int) -> list[dict]:
    from latency_lab.models.build_keras import tflite_path

    rows = []
    tflite_path(NetworkSpec.from_dict({**presets.get("s3nas-b0").to_dict(), "num_classes": 7}),
                model_dir)   # start the worker and import TensorFlow before timing
    for name in presets.names():
        spec = presets.get(name)
        emit_tflite(spec)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            data = emit_tflite(spec)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        converted = tflite_path(spec, model_dir).read_bytes()
        convert_s = time.perf_counter() - t0
        rows.append({"network": name, "direct_ms": 1e3 * statistics.median(times),
                     "direct_min_ms": 1e3 * min(times), "convert_s": convert_s,
                     "speedup": convert_s / statistics.median(times), "mbytes": len(data) / 1e6,
                     "same_ops": op_list(data) == op_list(converted),
                     "load": os.getloadavg()[0]})
        print(f"{name:26s} direct {rows[-1]['direct_ms']:7.1f} ms  converter "
              f"{convert_s:6.2f} s  x{rows[-1]['speedup']:.0f}  ops equal {rows[-1]['same_ops']}",
              flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=20)
    ap.add_argument("--resolutions", default="224,256")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--min-rounds", type=int, default=8)
    ap.add_argument("--time-cap-s", type=float, default=3600)
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="Converted models (kept between runs); default: a temporary directory.")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--control", action="store_true",
                    help="A/A control: measure a second interpreter of each file too, and report "
                         "direct#2/direct and keras#2/keras beside direct/keras.")
    ap.add_argument("--skip-build", action="store_true",
                    help="Skip step 1 (e.g. with --model-dir holding cached conversions).")
    ap.add_argument("--build-only", action="store_true",
                    help="Only step 1 (build times), written as direct_tflite_build{tag}.csv.")
    args = ap.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    tmp = tempfile.TemporaryDirectory()
    model_dir = args.model_dir or Path(tmp.name) / "models"
    load_start = os.getloadavg()

    if args.skip_build:
        first, builds = float("nan"), []
    else:
        print("-- build time: spec -> .tflite bytes", flush=True)
        first = first_call_s()
        builds = build_times(model_dir, args.repeats)
    if args.build_only:
        build = pd.DataFrame(builds)
        tag = f"_{args.tag}" if args.tag else ""
        write_atomic(args.out / f"direct_tflite_build{tag}.csv", build.to_csv(index=False))
        print(f"median over presets: direct {build['direct_ms'].median():.0f} ms, converter "
              f"{build['convert_s'].median():.1f} s; first call (B2, fresh process) {first:.2f} s; "
              f"load {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}")
        return 0

    rng = random.Random(args.seed)
    b0 = presets.get("efficientnet-b0")
    nets = [presets.get(n) for n in presets.names()]
    while len(nets) < len(presets.names()) + args.random:
        net = random_scaled(b0, 2, 1, rng)
        if net.fingerprint not in {n.fingerprint for n in nets}:
            nets.append(net)
    variants = ("direct", "keras", "direct#2", "keras#2") if args.control else ("direct", "keras")
    points = [(Variant(n, b), r) for n in nets for r in resolutions for b in variants]
    print(f"-- latency: {len(nets)} networks x {len(resolutions)} resolutions x "
          f"{len(variants)} variants = "
          f"{len(points)} points, interleaved", flush=True)
    protocol = Protocol(min_rounds=args.min_rounds, time_cap_s=args.time_cap_s)
    t0 = time.monotonic()
    with Store(Path(tmp.name) / "store.sqlite") as store, \
            PairDevice(str(model_dir), variants) as dev:
        for n in nets:   # convert before measuring: conversions are not what is compared
            from latency_lab.models.files import tflite_path

            tflite_path(n, model_dir, "keras")
        done = measure_points(dev, points, store, protocol,
                              progress=lambda st: None if st.note else print(
                                  "  " + status_line(st), flush=True))
    measure_s = time.monotonic() - t0
    rows = []
    got = {(v.spec.fingerprint, v.builder, r): m for (v, r), m in zip(points, done)}
    for n in nets:
        for res in resolutions:
            m = {b: got[(n.fingerprint, b, res)] for b in variants}
            row = {"network": n.name, "fingerprint": n.fingerprint, "resolution": res,
                   "direct_ms": m["direct"].latency_ms, "converted_ms": m["keras"].latency_ms}
            ratio, lo, hi = ratio_ci(m["direct"], m["keras"])
            row.update(ratio=ratio, ci_low=lo, ci_high=hi,
                       direct_ci_pct=100 * m["direct"].stats.ci_halfwidth_rel,
                       converted_ci_pct=100 * m["keras"].stats.ci_halfwidth_rel,
                       n_direct=m["direct"].stats.count, n_converted=m["keras"].stats.count,
                       within_2pct=abs(ratio - 1) <= 0.02, ci_within_2pct=lo >= 0.98 and hi <= 1.02)
            if args.control:   # the same comparison between two interpreters of one file
                for b in ("direct", "keras"):
                    r2, lo2, hi2 = ratio_ci(m[f"{b}#2"], m[b])
                    row.update({f"aa_{b}": r2, f"aa_{b}_ci_low": lo2, f"aa_{b}_ci_high": hi2})
            rows.append(row)
    lat = pd.DataFrame(rows)
    build = pd.DataFrame(builds)
    summary = {}
    if builds:
        b2 = build.set_index("network").loc["efficientnet-b2"]
        summary.update({
            "direct_ms_median_over_presets": float(build["direct_ms"].median()),
            "direct_ms_b2": float(b2["direct_ms"]), "convert_s_b2": float(b2["convert_s"]),
            "convert_s_median_over_presets": float(build["convert_s"].median()),
            "speedup_median": float(build["speedup"].median()),
            "first_call_b2_s": first, "all_ops_equal": bool(build["same_ops"].all())})
    summary.update({
        "n_points": len(lat), "within_2pct": int(lat["within_2pct"].sum()),
        "ci_within_2pct": int(lat["ci_within_2pct"].sum()),
        "ratio_median": float(lat["ratio"].median()),
        "ratio_min": float(lat["ratio"].min()), "ratio_max": float(lat["ratio"].max()),
        "measure_s": measure_s, "load_average_start": load_start,
        **({"aa_abs_dev_median": float(np.median(np.abs(
                np.r_[lat["aa_direct"], lat["aa_keras"]] - 1))),
            "ab_abs_dev_median": float(np.median(np.abs(lat["ratio"] - 1))),
            "aa_direct_range": [float(lat["aa_direct"].min()), float(lat["aa_direct"].max())],
            "aa_keras_range": [float(lat["aa_keras"].min()), float(lat["aa_keras"].max())]}
           if args.control else {}),
        "load_average_end": os.getloadavg(), "resolutions": resolutions,
        "protocol": protocol.to_dict(), "context": dev.info().to_dict(),
    })
    tag, out = (f"_{args.tag}" if args.tag else ""), args.out
    write_atomic(out / f"direct_tflite_benchmark{tag}.csv", lat.to_csv(index=False))
    write_atomic(out / f"direct_tflite_build{tag}.csv", build.to_csv(index=False))
    write_atomic(out / f"direct_tflite_benchmark{tag}.json", json.dumps(summary, indent=2))
    md = [f"# Direct TFLite emitter vs converter ({time.strftime('%Y-%m-%d')})", "",
          f"Load average at start {load_start[0]:.1f} / end {os.getloadavg()[0]:.1f} "
          f"(2 shared cores).", ""]
    if builds:
        md += ["## Spec -> .tflite bytes", "", build.round(3).to_markdown(index=False), "",
               f"Median over presets: direct {summary['direct_ms_median_over_presets']:.0f} ms, "
               f"converter {summary['convert_s_median_over_presets']:.1f} s "
               f"(x{summary['speedup_median']:.0f}); B2 direct {summary['direct_ms_b2']:.0f} ms; "
               f"first call in a fresh process (B2, schema import included) {first:.2f} s.", ""]
    md += ["## Latency, direct / converted (cpu device, interleaved)", "",
           lat.round(4).to_markdown(index=False), "",
           f"{summary['within_2pct']}/{len(lat)} ratios within 2%, "
           f"{summary['ci_within_2pct']}/{len(lat)} with the whole CI within 2%; median ratio "
           f"{summary['ratio_median']:.4f} (range {summary['ratio_min']:.4f}.."
           f"{summary['ratio_max']:.4f}); measured in {measure_s / 60:.0f} min."]
    if args.control:
        md[-1] += (f" A/A control (a second interpreter of the same file): median |ratio - 1| "
                   f"{100 * summary['aa_abs_dev_median']:.1f}% against "
                   f"{100 * summary['ab_abs_dev_median']:.1f}% for direct/converted.")
    write_atomic(out / f"direct_tflite_benchmark{tag}.md", "\n".join(md) + "\n")
    print("\n".join(md[-1:]))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("protocol", "context")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
