"""Training benchmark: throughput, data-pipeline overhead, and what the synthetic set shows.

On this machine's CPU, with mbconv-tiny on the synthetic set (`latency-lab dataset synth`):

1. images per second for training and evaluation at two resolutions;
2. the data pipeline's overhead: the same training steps timed with every batch decoded into
   memory beforehand vs read from disk by the DataLoader (decode, crop, resize in a worker
   process; and in the training process, workers=0); target: under 20%;
3. resolution: the same network trained the same way at two resolutions (the set's classes
   differ in fine detail, so the higher resolution should be clearly more accurate);
4. capacity: narrower, the preset, wider, deeper, all trained the same epochs;
5. net2net vs train for the same total epochs: a child trained from scratch for B + E epochs
   vs the parent trained B epochs, transformed (function-preserving) and fine-tuned E at a
   0.3 of the rate, no warm-up (as `net2net:` does by default).

Every training goes through `latency_lab.training.train` with the cache in --cache (default
results/benchmarks/training/cache, not committed), so a rerun reads finished runs back; their
recorded seconds stay those of the run that trained them. The load average is recorded next
to every figure: the machine is shared. Writes training_benchmark.{json,md} under --out.
Usage: python benchmarks/training_benchmark.py [--per-class 100] [--epochs 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def pipeline_overhead(spec, data, resolution: int, batch: int, steps: int, workers: int) -> dict:
    """Seconds for `steps` training steps with preloaded batches vs through the DataLoader."""
    import torch
    from torch import nn

    from latency_lab.build_torch import build_torch
    from latency_lab.training import Recipe, fit_classes, make_optimizer
    from latency_lab.training_data import ImageDataset, loader, normalizer

    torch.set_num_threads(1)
    spec = fit_classes(spec, data)
    ds = ImageDataset(data, "train", resolution, train=True, seed=0)
    norm = normalizer(torch.device("cpu"), channels_last=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)

    def run(batches) -> float:
        model = build_torch(spec.with_resolution(resolution)).train()
        model = model.to(memory_format=torch.channels_last)
        opt = make_optimizer(model, Recipe(batch=batch))
        t0, n = time.perf_counter(), 0
        for x, y in batches:
            loss = criterion(model(norm(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += 1
            if n == steps:
                break
        return time.perf_counter() - t0

    epoch = lambda w: loader(ds, batch, 0, w, shuffle=True, drop_last=True)  # noqa: E731
    preloaded = [(x.clone(), y.clone()) for (x, y), _ in zip(epoch(0), range(steps))]
    out = {"steps": steps, "batch": batch, "resolution": resolution, "load_before": load()}
    out["preloaded_s"] = run(preloaded)
    out[f"disk_workers{workers}_s"] = run(epoch(workers))
    out["disk_workers0_s"] = run(epoch(0))
    out["preloaded_again_s"] = run(preloaded)      # drift check: the machine is shared
    base = (out["preloaded_s"] + out["preloaded_again_s"]) / 2
    out[f"overhead_workers{workers}_pct"] = 100 * (out[f"disk_workers{workers}_s"] / base - 1)
    out["overhead_workers0_pct"] = 100 * (out["disk_workers0_s"] / base - 1)
    out["load_after"] = load()
    return out


def train_row(label, spec, resolution, data, recipe, runtime, **extra) -> dict:
    from latency_lab.complexity import params
    from latency_lab.training import train

    t0 = time.perf_counter()
    run = train(spec, resolution, data, recipe, runtime, **extra)
    return {"label": label, "network": spec.name, "fingerprint": spec.fingerprint,
            "params": params(replace(spec, num_classes=len(data.classes))),
            "widths": list(spec.widths), "depths": list(spec.depths), "resolution": resolution,
            "epochs": recipe.epochs, "top1": run.top1, "train_seconds": run.train_seconds,
            "train_images_per_s": sum(h["images_per_s"] for h in run.history) / len(run.history),
            "cached": run.cached, "wall_s": time.perf_counter() - t0, "load": load(),
            "run": run.key}


def eval_speed(spec, resolution, data, recipe, runtime, run_key) -> float:
    import torch

    from latency_lab.build_torch import build_torch
    from latency_lab.training import evaluate, fit_classes, runs_dir

    torch.set_num_threads(1)
    model = build_torch(fit_classes(spec, data).with_resolution(resolution))
    model.load_state_dict(torch.load(runs_dir() / run_key / "final.pt", weights_only=True))
    model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    evaluate(model, data, resolution, recipe, runtime)
    return len(data.val) / (time.perf_counter() - t0)


def net2net_vs_train(base, steps, res, data, recipe, runtime, base_epochs, ft_epochs):
    from latency_lab.build_torch import build_torch
    from latency_lab.net2net import transfer
    from latency_lab.search.scaling import rbis_step
    from latency_lab.training import fit_classes, load_weights, train

    parent_run = train(base, res, data, replace(recipe, epochs=base_epochs), runtime)
    parent = build_torch(fit_classes(base, data).with_resolution(res))
    parent.load_state_dict(load_weights(parent_run))
    rows = []
    for dim, stages in steps:
        child, _ = rbis_step(base, base, (0,) * len(base.stages), dim, stages)
        child = replace(child, name=f"{base.name} {dim[0]}{'+'.join(map(str, stages))}")
        model, report = transfer(parent, fit_classes(child, data), seed=recipe.seed)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        ft = train_row(f"net2net {dim[0]}{'+'.join(map(str, stages))}", child, res, data,
                       replace(recipe, epochs=ft_epochs, warmup=0.0, lr=0.3 * recipe.base_lr),
                       runtime,
                       init=f"net2net(parent={parent_run.key})", init_weights=lambda: state)
        scratch = train_row(f"train {dim[0]}{'+'.join(map(str, stages))}", child, res, data,
                            replace(recipe, epochs=base_epochs + ft_epochs), runtime)
        rows.append({"step": f"{dim[0]}{'+'.join(map(str, stages))}", "exact": report.exact,
                     "parent_top1": parent_run.top1, "net2net": ft, "scratch": scratch,
                     "total_epochs": base_epochs + ft_epochs})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "results" / "benchmarks" / "training"
                    / "synth", help="synthetic set (made here if absent)")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--val-per-class", type=int, default=40)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--resolutions", default="48,96")
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "benchmarks" / "training"
                    / "cache")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    args = ap.parse_args()
    os.environ["LATENCY_LAB_CACHE"] = str(args.cache)
    from latency_lab import presets
    from latency_lab.fileio import write_atomic
    from latency_lab.imagefolder import scan
    from latency_lab.scaling import scale_uniform
    from latency_lab.search.scaling import DEPTH, WIDTH
    from latency_lab.synth import SynthConfig, generate
    from latency_lab.training import Recipe, Runtime

    if args.quick:
        args.per_class, args.val_per_class, args.epochs, args.size = 6, 3, 2, 48
        args.resolutions = "32,48"
    low, high = (int(r) for r in args.resolutions.split(","))
    generate(SynthConfig(per_class=args.per_class, val_per_class=args.val_per_class,
                         size=args.size), args.data)
    data = scan(args.data)
    tiny = presets.get("mbconv-tiny")
    recipe = Recipe(epochs=args.epochs, batch=32, lr=0.05, min_scale=0.5)
    runtime = Runtime(workers=1, threads=1, progress=True)
    res = tiny.resolution
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(),
            "load_start": load(), "data": data.describe(), "recipe": recipe.to_dict(),
            "network": tiny.name}
    out: dict = {"meta": meta}
    print(data.describe(), flush=True)

    out["pipeline"] = [pipeline_overhead(tiny, data, r, 32, 40 if not args.quick else 4, 1)
                       for r in (low, high)]
    for p in out["pipeline"]:
        print(f"pipeline @{p['resolution']}: preloaded {p['preloaded_s']:.1f}/"
              f"{p['preloaded_again_s']:.1f} s, disk (1 worker) {p['disk_workers1_s']:.1f} s "
              f"-> {p['overhead_workers1_pct']:+.1f}%, disk (in-process) "
              f"{p['disk_workers0_s']:.1f} s -> {p['overhead_workers0_pct']:+.1f}% "
              f"(load {p['load_before']}->{p['load_after']})", flush=True)

    out["resolution"] = [train_row(f"mbconv-tiny @{r}", tiny, r, data, recipe, runtime)
                         for r in (low, high)]
    for row in out["resolution"]:
        row["eval_images_per_s"] = eval_speed(tiny, row["resolution"], data, recipe, runtime,
                                              row["run"])
    variants = [("narrower (w x0.75)", scale_uniform(tiny, 0.75, 1.0, res)),
                ("shallower (first block of each stage)", _shallow(tiny)),
                ("mbconv-tiny", tiny),
                ("wider (w x1.5)", scale_uniform(tiny, 1.5, 1.0, res)),
                ("deeper (d x2)", scale_uniform(tiny, 1.0, 2.0, res))]
    out["capacity"] = [train_row(label, replace(s, name=label), res, data, recipe, runtime)
                       for label, s in variants]
    out["net2net_vs_train"] = net2net_vs_train(
        tiny, [(WIDTH, (2, 3)), (DEPTH, (2, 3))], res, data, recipe, runtime,
        base_epochs=args.epochs, ft_epochs=max(1, args.epochs // 5))
    meta["load_end"] = load()
    write_atomic(args.out / "training_benchmark.json", json.dumps(out, indent=2))
    write_atomic(args.out / "training_benchmark.md", report(out))
    print(report(out))
    return 0


def _shallow(spec):
    from latency_lab.scaling import set_depth

    return replace(spec, stages=tuple(set_depth(s, 1) for s in spec.stages))


def report(out: dict) -> str:
    m = out["meta"]
    lines = ["# Training benchmark (mbconv-tiny on the synthetic set, this machine's CPU)", "",
             f"{m['when']}; {m['cpus']} CPUs shared with other jobs; load average "
             f"{m['load_start']} at the start, {m.get('load_end')} at the end. Data: "
             f"{m['data']}. Recipe: {json.dumps(m['recipe'])}. One torch thread, one "
             f"DataLoader worker.", "",
             "## Throughput and data pipeline", "",
             "| resolution | train images/s | eval images/s | steps | preloaded s | disk, 1 "
             "worker s | overhead | disk, in-process s | overhead | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p, r in zip(out["pipeline"], out["resolution"]):
        lines.append(f"| {p['resolution']} | {r['train_images_per_s']:.0f} | "
                     f"{r['eval_images_per_s']:.0f} | {p['steps']} x {p['batch']} | "
                     f"{p['preloaded_s']:.1f} / {p['preloaded_again_s']:.1f} | "
                     f"{p['disk_workers1_s']:.1f} | {p['overhead_workers1_pct']:+.1f}% | "
                     f"{p['disk_workers0_s']:.1f} | {p['overhead_workers0_pct']:+.1f}% | "
                     f"{p['load_before']}-{p['load_after']} |")
    lines += ["", "Preloaded: every batch decoded into memory first, timed twice (before and "
              "after the disk runs) and averaged; overhead = disk time / preloaded time - 1.",
              "", "## Accuracy (top-1 % on the validation images)", "",
              "| what | network | params | resolution | epochs | top-1 % | train s | load |",
              "|---|---|---|---|---|---|---|---|"]
    for section in ("resolution", "capacity"):
        for r in out[section]:
            lines.append(f"| {section} | {r['label']} | {r['params']:,} | {r['resolution']} | "
                         f"{r['epochs']} | {r['top1']:.1f} | {r['train_seconds']:.0f} | "
                         f"{r['load']} |")
    for r in out["net2net_vs_train"]:
        for kind in ("net2net", "scratch"):
            row = r[kind]
            how = (f"parent {r['total_epochs'] - row['epochs']} ep ({r['parent_top1']:.1f}%) + "
                   f"fine-tune {row['epochs']}" if kind == "net2net" else
                   f"from scratch {row['epochs']}")
            lines.append(f"| net2net vs train, {r['total_epochs']} epochs in all | {row['label']} "
                         f"| {row['params']:,} | {row['resolution']} | {how} | {row['top1']:.1f} "
                         f"| {row['train_seconds']:.0f} | {row['load']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
