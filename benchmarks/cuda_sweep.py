"""The cuda driver on a real NVIDIA GPU: fp32 and fp16 sweeps at batch 1 and at a batch that
fills the GPU, within a fixed time budget, on a fresh machine without internet.

Steps, each bounded by what is left of `--budget-s` (default 280 s for the whole script; a
watchdog interrupts it 40 s after that, and SIGTERM does the same, and what was measured is
still written):

1. the big batch (`--batch auto`): eager fp16 forwards at 224 px for batch 8, 32, ..., 512,
   the smallest batch with 90% of the best throughput, then checked for memory at the largest
   resolution in fp32 (halved until it fits);
2. four sweeps of `--network` over `--resolutions` (default 160:400:8), fp16 and fp32 at batch 1
   and at the big batch (CUDA graphs, cuDNN autotuning off: on an H100 it cost 1 to 3 s per
   new shape at batch 1 and bought under 0.3% at batch 256; step 3 measures it again), each
   with an equal share of the time left as its protocol time cap; each CSV written when its
   sweep ends, capped or interrupted, with the jump report (`latency-lab jumps`) beside it;
3. with --autotune-ab, cuDNN autotuning on vs off at the big batch in fp16: set-up time and
   latency at three resolutions, when 30 s are left (two H100 runs measured it: under 0.3%
   latency difference, results/cuda/; without it the sweeps get its time: each new shape
   costs 1 to 2.8 s of set-up there, so 31 shapes need about 55 s per sweep);
4. one figure comparing the four curves (CI bands, launch-bound points, kept candidates) and
   summary.md / summary.json (per sweep: points, samples, CI, stop reasons, set-up time,
   execution, launch-bound points, jumps, candidates; the probe; the A/B; load average).

Usage: python benchmarks/cuda_sweep.py [--out DIR] [--budget-s 280] [--resolutions 160:400:8]
       [--batch auto|N] [--network efficientnet-b0] [--device cuda]
Outputs under --out (default results/cuda/). Without a CUDA GPU it stops with one line, exit 2.
`--device module:Class` runs the same script against another driver (the tests run it against
a simulated GPU, tests/fake_gpu.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (8, 32, 64, 128, 256, 512)
PROBE_RES = 224
AB_RESOLUTIONS = (224, 288, 384)


def bootstrap() -> None:
    """Import latency_lab from this checkout when it is not installed (a fresh GPU machine):
    the folders devices/ and search/ are the packages latency_lab.devices / .search."""
    import importlib.util

    if importlib.util.find_spec("latency_lab") is not None:
        return
    sys.path.insert(0, str(ROOT))
    for name in ("devices", "search"):
        spec = importlib.util.spec_from_file_location(
            f"latency_lab.{name}", ROOT / name / "__init__.py",
            submodule_search_locations=[str(ROOT / name)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)


class Budget:
    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.deadline = self.start + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def probe_batch(open_device, spec, grid, limit_s: float, largest: int):
    """(batch, rows): the smallest batch with 90% of the best fp16 throughput at PROBE_RES,
    halved until fp32 fits at the largest resolution; probing stops at `limit_s`."""
    from latency_lab.measure.api import DeviceError

    t_end, rows = time.monotonic() + limit_s, []
    for b in [b for b in BATCHES if b <= largest]:
        if time.monotonic() > t_end:
            break
        try:
            with open_device(precision="fp16", batch_size=b, cuda_graphs=False,
                             cudnn_benchmark=False, shape_warmup=1) as dev:
                ms = dev.setup(spec, PROBE_RES)["eager_ms"]
        except DeviceError as exc:
            rows.append({"batch": b, "error": str(exc)})
            break
        rows.append({"batch": b, "eager_ms": round(ms, 3), "images_per_s": round(b / ms * 1e3)})
        if len(rows) >= 2 and rows[-1]["images_per_s"] < 1.05 * max(
                r["images_per_s"] for r in rows[:-1]):
            break   # saturated: a larger batch gained under 5%
    fits = [r for r in rows if "images_per_s" in r]
    if not fits:
        return 1, rows
    best = max(r["images_per_s"] for r in fits)
    batch = min(r["batch"] for r in fits if r["images_per_s"] >= 0.9 * best)
    while batch > 1 and time.monotonic() < t_end + 20:
        try:
            with open_device(precision="fp32", batch_size=batch, cuda_graphs=False,
                             cudnn_benchmark=False, shape_warmup=0) as dev:
                dev.setup(spec, max(grid))
            break
        except DeviceError as exc:
            rows.append({"batch": batch, "error": f"fp32 at {max(grid)} px: {exc}"})
            batch //= 2
    return batch, rows


def run_sweep_bounded(open_device, spec, grid, options, protocol, store, out: Path, name: str):
    """One sweep: its CSV and jump report written whatever happens; returns (frame, summary)."""
    from latency_lab.measure.api import DeviceError
    from latency_lab.measure.protocol import Interrupted
    from latency_lab.sweeps.run import launch_notes, run_sweep, to_frame, write_csv


    t0, interrupted, frame, error = time.monotonic(), False, None, ""
    info = None
    try:
        with open_device(**options) as dev:
            info = dev.info()
            frame = run_sweep(dev, spec, grid, store, protocol)
    except Interrupted as exc:
        frame, interrupted = to_frame(exc.measurements), True
    except DeviceError as exc:
        error = str(exc)
    s = {"sweep": name, **options, "time_cap_s": round(protocol.time_cap_s, 1),
         "wall_s": round(time.monotonic() - t0, 1), "error": error}
    if info is not None:
        s.update(hardware=info.hardware, runtime=info.runtime_version,
                 driver=info.extra.get("driver"), context_key=info.context_key)
    if frame is not None and len(frame):
        write_csv(frame, out / f"{name}.csv")
        s.update(summarize(frame), notes=launch_notes(frame))
        s.update(jump_report(frame, out / f"{name}_jumps", f"{spec.name} {name}"))
    s["interrupted"] = interrupted
    return frame, s


def summarize(frame) -> dict:
    m = frame[frame["n_samples"] > 0]
    out = {"points": len(frame), "measured": len(m), "samples": int(frame["n_samples"].sum()),
           "stop_reasons": frame["stop_reason"].value_counts().to_dict()}
    if len(m):
        out.update(median_ci_pct=round(float(m["ci_halfwidth_pct"].median()), 3),
                   latency_ms=[round(float(m["latency_ms"].min()), 3),
                               round(float(m["latency_ms"].max()), 3)],
                   setup_s_total=round(float(m["setup_s"].sum()), 1),
                   setup_s_max=round(float(m["setup_s"].max()), 2))
    for col in ("execution",):
        if col in m.columns:
            out[col] = sorted(set(m[col].dropna().astype(str)))
    if "launch_bound" in m.columns:
        out["launch_bound_points"] = int(m["launch_bound"].fillna(False).astype(bool).sum())
    if "eager_over_graph" in m.columns and m["eager_over_graph"].notna().any():
        out["eager_over_graph"] = [round(float(m["eager_over_graph"].min()), 2),
                                   round(float(m["eager_over_graph"].max()), 2)]
    return out


def jump_report(frame, out_dir: Path, title: str) -> dict:
    from latency_lab.errors import UserError

    try:
        from latency_lab.sweeps.candidates import kept
        from latency_lab.sweeps.report import analyze_sweep

        a = analyze_sweep(frame, out_dir, title=title)
    except (ImportError, UserError) as exc:   # ruptures missing, too few points measured
        return {"jumps_note": f"no jump report: {exc}"}
    return {"jumps_after": [int(r) for r in a.jumps["resolution_before"]],
            "jump_pct": [round(float(p), 1) for p in a.jumps["jump_pct"]],
            "candidates": kept(a.candidates)}


def autotune_ab(open_device, spec, batch: int, budget: Budget) -> list[dict]:
    """cuDNN autotuning on and off at the big batch in fp16: set-up seconds and median ms."""
    import statistics

    rows = []
    for flag in (True, False):
        with open_device(precision="fp16", batch_size=batch, cudnn_benchmark=flag,
                         shape_warmup=3) as dev:
            for r in AB_RESOLUTIONS:
                if budget.left() < 8:
                    return rows
                t0 = time.monotonic()
                dev.setup(spec, r)
                setup = time.monotonic() - t0
                run = dev.sample(spec, r, runs=8, warmup_runs=1)
                rows.append({"cudnn_benchmark": flag, "resolution": r, "setup_s": round(setup, 2),
                             "median_ms": round(statistics.median(run.samples_ms), 4)})
    return rows


def figure(frames: dict, summaries: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latency_lab.fileio import atomic_path

    batches = sorted({s["batch_size"] for s in summaries if s["sweep"] in frames})
    fig, axes = plt.subplots(1, max(1, len(batches)), figsize=(7 * max(1, len(batches)), 5),
                             dpi=110, squeeze=False)
    for ax, b in zip(axes[0], batches):
        for s in summaries:
            f = frames.get(s["sweep"])
            if f is None or s["batch_size"] != b:
                continue
            m = f[f["n_samples"] > 0]
            line, = ax.plot(m["resolution"], m["latency_ms"], ".-", ms=4, label=s["precision"])
            ax.fill_between(m["resolution"], m["ci_low_ms"], m["ci_high_ms"], alpha=0.25,
                            color=line.get_color(), lw=0)
            if "launch_bound" in m.columns and m["launch_bound"].fillna(False).any():
                lb = m[m["launch_bound"].fillna(False).astype(bool)]
                ax.plot(lb["resolution"], lb["latency_ms"], "x", color="red", ms=7,
                        label=f"{s['precision']}: launch-bound")
            for r in s.get("candidates", []):
                y = m.loc[m["resolution"] == r, "latency_ms"]
                if len(y):
                    ax.plot([r], [float(y.iloc[0])], "o", mfc="none", mec=line.get_color(), ms=10)
        ax.set_title(f"batch {b} (circles: kept candidate resolutions)", fontsize=10)
        ax.set_xlabel("input resolution (px)")
        ax.set_ylabel("median latency per batch (ms), 95% CI")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def write_summary(out: Path, summary: dict) -> None:
    from latency_lab.fileio import write_atomic

    write_atomic(out / "summary.json", json.dumps(summary, indent=1, default=str))
    lines = [f"# cuda sweeps: {summary.get('gpu', '?')}", "",
             f"{summary.get('runtime', '')}; load average before/after {summary['load_before']}"
             f" / {summary.get('load_after')}; {summary.get('elapsed_s')} s in all", ""]
    if summary.get("probe"):
        lines += ["big-batch probe (fp16, 224 px, eager): " + "; ".join(
            f"b{r['batch']}: " + (f"{r['eager_ms']} ms, {r['images_per_s']} img/s"
                                  if "eager_ms" in r else r["error"]) for r in summary["probe"]),
                  f"chosen batch: {summary.get('big_batch')}", ""]
    for s in summary["sweeps"]:
        lines.append(f"## {s['sweep']}")
        lines += [f"- {k}: {v}" for k, v in s.items() if k != "sweep"] + [""]
    if summary.get("autotune"):
        lines += ["## cuDNN autotuning (fp16, big batch)", "",
                  "| cudnn_benchmark | resolution | setup_s | median_ms |", "|---|---|---|---|"]
        lines += [f"| {r['cudnn_benchmark']} | {r['resolution']} | {r['setup_s']} | "
                  f"{r['median_ms']} |" for r in summary["autotune"]] + [""]
    write_atomic(out / "summary.md", "\n".join(lines))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "cuda")
    ap.add_argument("--budget-s", type=float, default=280.0)
    ap.add_argument("--resolutions", default="160:400:8")
    ap.add_argument("--batch", default="auto", help="big batch: auto or a number")
    ap.add_argument("--network", default="efficientnet-b0")
    ap.add_argument("--device", default="cuda", help="driver (a simulated GPU in the tests)")
    ap.add_argument("--autotune-ab", action="store_true",
                    help="also compare cuDNN autotuning on vs off (step 3; about 30 s)")
    args = ap.parse_args(argv)
    bootstrap()
    budget = Budget(args.budget_s)
    os.environ.setdefault("LATENCY_LAB_CACHE", tempfile.mkdtemp(prefix="latency-lab-"))

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(args.budget_s + 40))    # the watchdog: every step is bounded

    from latency_lab.measure.api import DeviceError, get_device
    from latency_lab.network.presets import load_network
    from latency_lab.measure.protocol import Protocol
    from latency_lab.measure.store import Store
    from latency_lab.sweeps.run import parse_resolutions

    spec, grid = load_network(args.network), parse_resolutions(args.resolutions)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    def open_device(**options):
        return get_device(args.device, **options)

    summary: dict = {"load_before": [round(x, 2) for x in os.getloadavg()], "sweeps": [],
                     "network": spec.name, "resolutions": args.resolutions,
                     "budget_s": args.budget_s}
    try:
        with open_device(precision="fp32") as dev:
            info = dev.info()
    except DeviceError as exc:
        print(f"error: {exc} (benchmarks/cuda_sweep.py needs a CUDA GPU)", file=sys.stderr)
        return 2
    summary.update(gpu=info.hardware, runtime=f"{info.runtime} {info.runtime_version}",
                   device=dict(info.extra))
    frames: dict = {}
    code = 0
    try:
        if args.batch == "auto":
            batch, summary["probe"] = probe_batch(open_device, spec, grid,
                                                  min(25.0, 0.1 * budget.left()), 512)
        else:
            batch = int(args.batch)
        summary["big_batch"] = batch
        plans = [("fp16", 1), ("fp32", 1), ("fp16", batch), ("fp32", batch)]
        with Store(out / "cuda.sqlite") as store:
            for k, (precision, b) in enumerate(plans):
                reserve = 35.0 if args.autotune_ab else 8.0   # the A/B step and the reports
                cap = max(5.0, (budget.left() - reserve) / (len(plans) - k))
                big = b > 1
                options = {"precision": precision, "batch_size": b, "cuda_graphs": True,
                           "cudnn_benchmark": False, "shape_warmup": 2 if big else 5}
                protocol = Protocol(runs_per_visit=4 if big else 10, min_rounds=3,
                                    max_rounds=8 if big else 20, warmup_first_visit=1,
                                    time_cap_s=cap)
                name = f"{spec.name}_{precision}_b{b}"
                print(f"[{budget.elapsed():5.0f} s] {name}: {len(grid)} resolutions, cap "
                      f"{cap:.0f} s", flush=True)
                frame, s = run_sweep_bounded(open_device, spec, grid, options, protocol,
                                             store, out, name)
                summary["sweeps"].append(s)
                if frame is not None:
                    frames[name] = frame
                print(f"[{budget.elapsed():5.0f} s] {name}: {json.dumps(s, default=str)}",
                      flush=True)
                if s["interrupted"]:
                    raise KeyboardInterrupt
        if args.autotune_ab and budget.left() >= 30:
            summary["autotune"] = autotune_ab(open_device, spec, batch, budget)
    except KeyboardInterrupt:
        summary["interrupted_at_s"] = round(budget.elapsed(), 1)
        print("interrupted: writing what was measured", file=sys.stderr)
        code = 3
    except DeviceError as exc:
        summary["error"] = str(exc)
        code = 1
    finally:
        signal.alarm(0)
    if frames:
        figure(frames, summary["sweeps"], out / f"{spec.name}_cuda_sweeps.png",
               f"{spec.name} on {summary.get('gpu')} ({summary.get('runtime')})")
    summary.update(elapsed_s=round(budget.elapsed(), 1),
                   load_after=[round(x, 2) for x in os.getloadavg()])
    write_summary(out, summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
