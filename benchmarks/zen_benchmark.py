"""Benchmark of the Zen-Score evaluator on this machine's CPU.

For EfficientNet-B0, B1 and B2 at their own resolutions (224, 240, 260):

1. seconds per evaluation at batch 16, one repeat (what a search pays per candidate; target:
   under 3 s per network on this 2-core machine), median and range over --runs evaluations
   with torch's default threads and with threads=1 alternating (on a loaded machine OpenMP
   workers spin-wait), each network in a fresh process so that the peak resident memory
   (ru_maxrss) is its own; the first evaluation of a process (warm-up) is reported apart;
2. the score's repeat-to-repeat spread: --repeats draws (seeds (0, i)), their standard
   deviation and the 95% CI half-width of the mean, beside the score difference a single
   RBIS step makes (B0 -> a width step on stage 3), which is what the search must resolve;
3. squeeze-and-excitation under Zen-NAS's Gaussian init (why `se=drop` is the default): the
   share of SE gates saturated (< 0.01 or > 0.99) on B0, and the spread with `se=keep`.

The machine is shared: the load average is recorded beside every timing.
Usage: python benchmarks/zen_benchmark.py [--runs 3] [--repeats 8] [--out results/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("efficientnet-b0", "efficientnet-b1", "efficientnet-b2")


THREADS = (0, 1)     # torch's default (all cores), one thread


def one(name: str, runs: int, batch: int) -> dict:
    """In a fresh process: a warm-up evaluation, then `runs` timed evaluations per thread
    setting, alternating."""
    from latency_lab.network import presets
    from latency_lab.search.evaluators import parse_evaluator

    spec = presets.get(name)
    evs = {t: parse_evaluator(f"zen,batch={batch},threads={t}") for t in THREADS}
    t0 = time.perf_counter()
    first = evs[0].evaluate(evs[0].request(spec, spec.resolution)).value
    warmup = time.perf_counter() - t0
    times = {t: [] for t in THREADS}
    cpu = {t: [] for t in THREADS}
    loads = {t: [] for t in THREADS}
    for _ in range(runs):
        for t, ev in evs.items():
            loads[t].append(os.getloadavg()[0])
            t0, c0 = time.perf_counter(), time.process_time()
            value = ev.evaluate(ev.request(spec, spec.resolution)).value
            times[t].append(time.perf_counter() - t0)
            cpu[t].append(time.process_time() - c0)
            assert value == first, "threads changed the score"
    return {"network": name, "resolution": spec.resolution, "warmup_s": warmup,
            "seconds": {str(t): v for t, v in times.items()},
            "cpu_seconds": {str(t): v for t, v in cpu.items()},
            "load_1min": {str(t): v for t, v in loads.items()}, "value": first,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def timed(runs: int, batch: int) -> list[dict]:
    out = []
    for name in NETWORKS:
        cmd = [sys.executable, __file__, "--one", name, "--runs", str(runs), "--batch",
               str(batch)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        per = ", ".join(f"threads={t or 'default'}: {statistics.median(v):.2f} s "
                        f"{[round(s, 2) for s in v]} (CPU "
                        f"{statistics.median(row['cpu_seconds'][str(t)]):.2f} s)" for t, v in
                        ((int(k), v) for k, v in row["seconds"].items()))
        print(f"{name} @ {row['resolution']}: per evaluation {per}; warm-up "
              f"{row['warmup_s']:.2f} s; load {row['load_1min']['0'][0]:.1f}; peak RSS "
              f"{row['peak_rss_mb']:.0f} MB", flush=True)
        out.append(row)
    return out


def spread(repeats: int, batch: int) -> dict:
    from latency_lab.network import presets
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.search.scaling import WIDTH, rbis_step

    b0 = presets.get("efficientnet-b0")
    step, _ = rbis_step(b0, b0, (0,) * 7, WIDTH, (3,))
    out = {}
    opts = f"batch={batch},repeats={repeats},threads=1"
    for text in (f"zen,{opts}", f"zen-tuned,{opts}", f"zen,{opts},se=keep"):
        ev = parse_evaluator(text)
        rows = {}
        for label, spec in (("efficientnet-b0", b0), ("b0 + width step on stage 3", step)):
            r = ev.evaluate(ev.request(spec, 224))
            vals = r.details["repeats"]
            rows[label] = {"mean": r.value, "std": statistics.stdev(vals),
                           "ci_halfwidth": (r.ci[1] - r.ci[0]) / 2, "values": vals}
        a, b = rows.values()
        out[text] = {"networks": rows, "step_difference": b["mean"] - a["mean"],
                     "step_over_std": (b["mean"] - a["mean"]) / a["std"],
                     "load_1min": os.getloadavg()[0]}
        print(f"{text}: B0 {a['mean']:.4f} +- {a['std']:.4f} (std), CI half-width "
              f"{a['ci_halfwidth']:.4f}; one width step on stage 3 moves it by "
              f"{b['mean'] - a['mean']:+.4f} ({out[text]['step_over_std']:+.2f} std)", flush=True)
    return out


def se_saturation(batch: int) -> dict:
    """Share of SE gate values < 0.01 or > 0.99 on B0 under Zen-NAS's Gaussian init."""
    import torch

    from latency_lab.network import presets
    from latency_lab.models.build_torch import SqueezeExcite, build_torch
    from latency_lab.search.zen import gaussian_init

    b0 = presets.get("efficientnet-b0")
    model = build_torch(b0)
    model.set_residual(False)
    gates = []

    def hook(module, inputs, output):
        x = inputs[0]
        s = x.mean((2, 3), keepdim=True)
        gates.append(torch.sigmoid(module.expand(module.act(module.reduce(s)))).flatten())

    for m in model.modules():
        if isinstance(m, SqueezeExcite):
            m.register_forward_hook(hook)
    gaussian_init(model, torch.Generator().manual_seed(0))
    model.train()
    with torch.no_grad():
        model.forward_features(torch.randn(batch, 3, 224, 224,
                                           generator=torch.Generator().manual_seed(1)))
    g = torch.cat(gates)
    saturated = float(((g < 0.01) | (g > 0.99)).float().mean())
    print(f"SE gates on B0 under Gaussian init: {100 * saturated:.1f}% saturated (< 0.01 or > "
          f"0.99) over {g.numel()} gate values", flush=True)
    return {"saturated_share": saturated, "gate_values": g.numel(),
            "zero_share": float((g < 0.01).float().mean())}


def write_markdown(path: Path, figures: dict) -> None:
    lines = ["# Zen-Score benchmark (cpu)", "",
             f"Machine: {figures['machine']}; torch {figures['torch']}, "
             f"{figures['threads']} threads. Batch {figures['batch']}, one repeat per evaluation.",
             "CPU s: the process's CPU time per evaluation (all threads), which the load does not "
             "inflate: with one thread it estimates the wall time on an idle core.",
             "", "| network | resolution | threads | s / evaluation (median) | runs (s) | "
             "CPU s (median) | load (1 min) | warm-up (s) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in figures["timing"]:
        for t, secs in r["seconds"].items():
            lines.append(f"| {r['network']} | {r['resolution']} | {t if t != '0' else 'default'}"
                         f" | {statistics.median(secs):.2f} | "
                         f"{', '.join(f'{s:.2f}' for s in secs)} | "
                         f"{statistics.median(r['cpu_seconds'][t]):.2f} | "
                         f"{', '.join(f'{x:.1f}' for x in r['load_1min'][t])} | "
                         f"{r['warmup_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", f"Repeat-to-repeat spread ({figures['repeats']} draws, B0 at 224) against the "
              "difference one RBIS step makes (width step on stage 3):", "",
              "| evaluator | B0 mean | std | 95% CI half-width | step difference | "
              "step / std |", "|---|---|---|---|---|---|"]
    for text, s in figures["spread"].items():
        a = s["networks"]["efficientnet-b0"]
        lines.append(f"| `{text}` | {a['mean']:.4f} | {a['std']:.4f} | {a['ci_halfwidth']:.4f} "
                     f"| {s['step_difference']:+.4f} | {s['step_over_std']:+.2f} |")
    se = figures["se"]
    lines += ["", f"SE gates on B0 under Zen-NAS's Gaussian init: "
              f"{100 * se['saturated_share']:.1f}% saturated (< 0.01 or > 0.99), "
              f"{100 * se['zero_share']:.1f}% below 0.01, of {se['gate_values']} gate values.",
              ""]
    from latency_lab.fileio import write_atomic

    write_atomic(path, "\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--timing-only", action="store_true",
                    help="rerun step 1 only, keeping steps 2-3 from the last zen_benchmark.json")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.runs, args.batch)))
        return 0
    import platform

    import torch

    from latency_lab.fileio import write_atomic

    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "batch": args.batch, "repeats": args.repeats,
               "load_before": os.getloadavg()}
    figures["timing"] = timed(args.runs, args.batch)
    if args.timing_only:      # keep the spread and SE figures of the last full run
        old = json.loads((args.out / "zen_benchmark.json").read_text())
        figures.update(spread=old["spread"], se=old["se"], repeats=old["repeats"])
    else:
        figures["spread"] = spread(args.repeats, args.batch)
        figures["se"] = se_saturation(args.batch)
    figures["load_after"] = os.getloadavg()
    write_atomic(args.out / "zen_benchmark.json", json.dumps(figures, indent=2))
    write_markdown(args.out / "zen_benchmark.md", figures)
    print(f"wrote {args.out}/zen_benchmark.json, zen_benchmark.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
