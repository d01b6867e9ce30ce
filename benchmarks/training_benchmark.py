"""Training benchmark: throughput, data-pipeline overhead, and what the synthetic set shows.

On this machine's CPU, with mbconv-tiny on the synthetic set (`latency-lab dataset synth`):

1. images per second for training and evaluation at two resolutions;
2. the data pipeline's overhead: the same training steps timed with every batch decoded into
   memory beforehand vs read from disk by the DataLoader (decode, crop, resize in a worker
   process; and in the training process, workers=0); target: under 20%;
3. resolution: the same network trained the same way at two resolutions (the set's classes
   differ in fine detail, so the higher resolution should be clearly more accurate);
4. capacity: narrower, shallower, the preset, wider, deeper, all trained the same epochs, at
   the preset's 64 px and at the higher resolution (at 8 epochs and 64 px, where the fine
   detail is mostly gone, neither wider nor deeper beat the preset: 50.0 and 46.7 vs 51.8%;
   at 96 px wider did, by 22 points);
   and the training noise: the preset at the higher resolution with 3 seeds (65.8, 66.0,
   81.1% at 96 px: a 15-point range, five times a Wilson interval's half-width);
5. net2net vs train for the same total epochs: a child trained from scratch for B + E epochs
   vs the parent trained B epochs, transformed (function-preserving) and fine-tuned E at a
   0.3 of the rate, no warm-up (as `net2net:` does by default).

Every top-1 comes with its 95% Wilson interval over the validation images, and the two claims
the synthetic set exists for (the higher resolution beats the lower; wider beats narrower and
deeper beats shallower at the same epochs) are checked in the report: "clearly" means the two
intervals do not overlap (a conservative test: disjoint 95% intervals imply p < 0.01).

Every training goes through `latency_lab.training.train.train` with the cache in --cache (default
results/benchmarks/training/cache, not committed), so a rerun reads finished runs back; their
recorded seconds stay those of the run that trained them. The load average is recorded next
to every figure: the machine is shared. Writes training_benchmark.{json,md} under --out.
Usage: python benchmarks/training_benchmark.py [--per-class 100] [--val-per-class 100]
       [--epochs 10] [--steps 40] [--quick]
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


def pipeline_overhead(spec, data, resolution: int, batch: int, steps: int, workers: int,
                      repeats: int = 3) -> dict:
    """Seconds for `steps` training steps: batches preloaded vs through the DataLoader.

    The three ways (preloaded; from disk with `workers` workers; from disk in this process)
    are timed in turn, `repeats` rounds in a rotating order, and each one's median is kept:
    timed once each, back to back, on this shared machine the same preloaded loop took 23.1 s
    and then 14.1 s (load 5.8; a development run, not committed), more than the effect
    measured. Each timing starts after its
    first batch (the worker's start and first decode are paid once per training, not per
    step). CPU time beside the wall time (this process and its DataLoader workers, from
    /proc): steadier under load than wall time, it is the pipeline's own cost; a worker's
    share may include up to `prefetch_factor` batches decoded ahead of the timed steps.
    With 10 steps of 32 and 3 rounds, the wall-time medians still swung by 40% between two
    runs at load 2.4-4.2 (96 px: preloaded 7.4, 3.5, 2.8 s in a development run; 4.8, 6.0,
    5.5 s in the committed one, results/benchmarks/training_benchmark.md), the CPU ones by a
    few points."""
    import statistics

    import torch
    from torch import nn

    from latency_lab.models.build_torch import build_torch
    from latency_lab.training.train import Recipe, fit_classes, make_optimizer
    from latency_lab.training.data import ImageDataset, loader, set_epoch, normalizer

    torch.set_num_threads(1)
    spec = fit_classes(spec, data)
    ds = ImageDataset(data, "train", resolution, train=True, seed=0)
    norm = normalizer(torch.device("cpu"), channels_last=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    model = build_torch(spec.with_resolution(resolution)).train()
    model = model.to(memory_format=torch.channels_last)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def run(batches) -> tuple[float, float]:
        model.load_state_dict(start)
        opt = make_optimizer(model, Recipe(batch=batch))
        batches = iter(batches)
        next(batches)                                   # the first batch is not timed
        t0, c0 = time.perf_counter(), time.process_time() + children_cpu()
        for _, (x, y) in zip(range(steps), batches):
            loss = criterion(model(norm(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0, time.process_time() + children_cpu() - c0

    loaders = {w: loader(ds, batch, 0, w, shuffle=True, drop_last=True) for w in (0, workers)}
    preloaded = [(x.clone(), y.clone()) for (x, y), _ in zip(loaders[0], range(steps + 1))]
    ways = {"preloaded": lambda r: preloaded,
            f"disk_workers{workers}": lambda r: set_epoch(loaders[workers], r),
            "disk_workers0": lambda r: set_epoch(loaders[0], r)}
    names = list(ways)
    out = {"steps": steps, "batch": batch, "resolution": resolution, "repeats": repeats,
           "load_before": load()}
    run(preloaded)                                      # warm-up: first passes allocate
    timed: dict = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % 3:] + names[:r % 3]:
            timed[n].append(run(ways[n](r)))
    for n in names:
        out[f"{n}_s"] = statistics.median(t for t, _ in timed[n])
        out[f"{n}_cpu_s"] = statistics.median(c for _, c in timed[n])
        out[f"{n}_all_s"] = [round(t, 2) for t, _ in timed[n]]
    base = out["preloaded_s"]
    out[f"overhead_workers{workers}_pct"] = 100 * (out[f"disk_workers{workers}_s"] / base - 1)
    out["overhead_workers0_pct"] = 100 * (out["disk_workers0_s"] / base - 1)
    for w in (0, workers):
        out[f"overhead_workers{w}_cpu_pct"] = 100 * (out[f"disk_workers{w}_cpu_s"]
                                                     / out["preloaded_cpu_s"] - 1)
    out["load_after"] = load()
    return out


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's live child processes (Linux /proc): the
    DataLoader's persistent workers; 0 where /proc is absent."""
    total, me = 0, os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if total else 0.0


def train_row(label, spec, resolution, data, recipe, runtime, **extra) -> dict:
    from latency_lab.network.complexity import params
    from latency_lab.search.training_eval import wilson
    from latency_lab.training.train import train

    t0 = time.perf_counter()
    run = train(spec, resolution, data, recipe, runtime, **extra)
    return {"label": label, "network": spec.name, "fingerprint": spec.fingerprint,
            "params": params(replace(spec, num_classes=len(data.classes))),
            "widths": list(spec.widths), "depths": list(spec.depths), "resolution": resolution,
            "epochs": recipe.epochs, "top1": run.top1, "val_images": len(data.val),
            "ci95": wilson(run.top1, len(data.val)), "train_seconds": run.train_seconds,
            "train_images_per_s": sum(h["images_per_s"] for h in run.history) / len(run.history),
            "cached": run.cached, "wall_s": time.perf_counter() - t0, "load": load(),
            "run": run.key}


def eval_speed(spec, resolution, data, recipe, runtime, run_key) -> float:
    import torch

    from latency_lab.models.build_torch import build_torch
    from latency_lab.training.train import evaluate, fit_classes, runs_dir

    torch.set_num_threads(1)
    model = build_torch(fit_classes(spec, data).with_resolution(resolution))
    model.load_state_dict(torch.load(runs_dir() / run_key / "final.pt", weights_only=True))
    model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    evaluate(model, data, resolution, recipe, runtime)
    return len(data.val) / (time.perf_counter() - t0)


def net2net_vs_train(base, steps, res, data, recipe, runtime, base_epochs, ft_epochs):
    from latency_lab.models.build_torch import build_torch
    from latency_lab.training.net2net import transfer
    from latency_lab.search.scaling import rbis_step
    from latency_lab.training.train import fit_classes, load_weights, train

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
    ap.add_argument("--data", type=Path, help="synthetic set, made here if absent (default: "
                    "results/benchmarks/training/synth-PER-VAL-SIZE)")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--val-per-class", type=int, default=100,
                    help="validation images per class (cheap: evaluated once per training; "
                    "100 x 10 classes give a Wilson interval of about +-3 points at 50%%)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--resolutions", default="48,96")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the preset at the higher "
                    "resolution (seed 0 is the resolution row's training): the training noise")
    ap.add_argument("--steps", type=int, default=10, help="training steps per pipeline timing")
    ap.add_argument("--repeats", type=int, default=3, help="pipeline timings per way (median)")
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "benchmarks" / "training"
                    / "cache")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    ap.add_argument("--from-json", action="store_true", help="rewrite the report from --out's "
                    "training_benchmark.json (after a change to the report; measures nothing)")
    args = ap.parse_args()
    if args.from_json:
        from latency_lab.fileio import write_atomic

        out = json.loads((args.out / "training_benchmark.json").read_text())
        md = report(out)
        write_atomic(args.out / "training_benchmark.json", json.dumps(out, indent=2))
        write_atomic(args.out / "training_benchmark.md", md)
        print(md)
        return 0
    os.environ["LATENCY_LAB_CACHE"] = str(args.cache)
    from latency_lab.network import presets
    from latency_lab.fileio import write_atomic
    from latency_lab.training.imagefolder import scan
    from latency_lab.network.scaling import scale_uniform
    from latency_lab.search.scaling import DEPTH, WIDTH
    from latency_lab.training.synth import SynthConfig, generate
    from latency_lab.training.train import Recipe, Runtime

    if args.quick:
        args.per_class, args.val_per_class, args.epochs, args.size = 6, 3, 2, 48
        args.resolutions, args.steps, args.repeats, args.seeds = "32,48", 4, 1, 2
    low, high = (int(r) for r in args.resolutions.split(","))
    args.data = args.data or (ROOT / "results" / "benchmarks" / "training" /
                              f"synth-{args.per_class}-{args.val_per_class}-{args.size}")
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

    meta["epochs"], meta["pipeline_steps"], meta["repeats"] = args.epochs, args.steps, args.repeats
    out["pipeline"] = [pipeline_overhead(tiny, data, r, 8 if args.quick else 32, args.steps, 1,
                                         args.repeats)
                       for r in (low, high)]
    for p in out["pipeline"]:
        print(f"pipeline @{p['resolution']}: preloaded {p['preloaded_all_s']} s, disk (1 "
              f"worker) {p['disk_workers1_all_s']} s -> {p['overhead_workers1_pct']:+.1f}%, disk "
              f"(in-process) {p['disk_workers0_all_s']} s -> {p['overhead_workers0_pct']:+.1f}% "
              f"(CPU {p['overhead_workers1_cpu_pct']:+.1f}% / "
              f"{p['overhead_workers0_cpu_pct']:+.1f}%; load {p['load_before']}->"
              f"{p['load_after']})", flush=True)

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
    out["capacity"] = [{**train_row(label, replace(s, name=label), r, data,
                                    recipe, runtime), "section": f"capacity @{r}"}
                       for r in dict.fromkeys((res, high)) for label, s in variants]
    out["seeds"] = [{**train_row(f"mbconv-tiny @{high} seed {s}", tiny, high, data,
                                 replace(recipe, seed=s), runtime), "seed": s}
                    for s in range(args.seeds)]
    out["net2net_vs_train"] = net2net_vs_train(
        tiny, [(WIDTH, (2, 3)), (DEPTH, (2, 3))], res, data, recipe, runtime,
        base_epochs=args.epochs, ft_epochs=max(1, args.epochs // 5))
    meta["load_end"] = load()
    md = report(out)       # also adds out["claims"]
    write_atomic(args.out / "training_benchmark.json", json.dumps(out, indent=2))
    write_atomic(args.out / "training_benchmark.md", md)
    print(md)
    return 0


def _shallow(spec):
    from latency_lab.network.scaling import set_depth

    return replace(spec, stages=tuple(set_depth(s, 1) for s in spec.stages))


def report(out: dict) -> str:
    m = out["meta"]
    lines = ["# Training benchmark (mbconv-tiny on the synthetic set, this machine's CPU)", "",
             f"{m['when']}; {m['cpus']} CPUs shared with other jobs; load average "
             f"{m['load_start']} at the start, {m.get('load_end')} at the end. Data: "
             f"{m['data']}. Recipe: {json.dumps(m['recipe'])}. One torch thread, one "
             f"DataLoader worker.", "",
             "## Throughput and data pipeline", "",
             "| resolution | train images/s | eval images/s | steps x batch (x repeats) | "
             "preloaded s | disk, 1 worker s | overhead (CPU) | disk, in-process s | overhead "
             "(CPU) | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p, r in zip(out["pipeline"], out["resolution"]):
        lines.append(f"| {p['resolution']} | {r['train_images_per_s']:.0f} | "
                     f"{r['eval_images_per_s']:.0f} | {p['steps']} x {p['batch']} (x "
                     f"{p['repeats']}) | {_all(p, 'preloaded')} | {_all(p, 'disk_workers1')} | "
                     f"{p['overhead_workers1_pct']:+.1f}% ({p['overhead_workers1_cpu_pct']:+.1f}%)"
                     f" | {_all(p, 'disk_workers0')} | {p['overhead_workers0_pct']:+.1f}% "
                     f"({p['overhead_workers0_cpu_pct']:+.1f}%) | {p['load_before']}-"
                     f"{p['load_after']} |")
    lines += ["", "Preloaded: every batch decoded into memory first. The three ways are timed "
              "in turn, in a rotating order, each timing after its first batch; the median of "
              "each (all timings in brackets) gives overhead = disk / preloaded - 1. (CPU): the same "
              "with CPU seconds of the process and its DataLoader worker: the decoding and "
              "augmenting's own cost, far less sensitive to the other jobs on the machine; on "
              "an idle 2-core machine a worker's share runs beside the training step.",
              "", "## Accuracy (top-1 % on the validation images)", "",
              "| what | network | params | resolution | epochs | top-1 % | 95% Wilson | train s "
              "| load |", "|---|---|---|---|---|---|---|---|---|"]
    for section in ("resolution", "capacity", "seeds"):
        for r in out[section]:
            lines.append(f"| {r.get('section', section)} | {r['label']} | {r['params']:,} | "
                         f"{r['resolution']} | "
                         f"{r['epochs']} | {r['top1']:.1f} | {_ci(r)} | {r['train_seconds']:.0f} | "
                         f"{r['load']} |")
    for r in out["net2net_vs_train"]:
        for kind in ("net2net", "scratch"):
            row = r[kind]
            how = (f"parent {r['total_epochs'] - row['epochs']} ep ({r['parent_top1']:.1f}%) + "
                   f"fine-tune {row['epochs']}" if kind == "net2net" else
                   f"from scratch {row['epochs']}")
            lines.append(f"| net2net vs train, {r['total_epochs']} epochs in all | {row['label']} "
                         f"| {row['params']:,} | {row['resolution']} | {how} | {row['top1']:.1f} "
                         f"| {_ci(row)} | {row['train_seconds']:.0f} | {row['load']} |")
    return "\n".join(lines + ["", "## What the synthetic set shows", ""] + claims(out)) + "\n"


def _all(p, way) -> str:
    return f"{p[way + '_s']:.1f} ({', '.join(f'{t:.1f}' for t in p[way + '_all_s'])})"


def _ci(row) -> str:
    return f"{row['ci95'][0]:.1f}-{row['ci95'][1]:.1f}" if row.get("ci95") else "-"


def compare(better, worse) -> dict:
    """`better` beats `worse` clearly when their 95% Wilson intervals are disjoint."""
    return {"better": better["label"], "worse": worse["label"],
            "difference": better["top1"] - worse["top1"],
            "clearly": better["ci95"][0] > worse["ci95"][1],
            "clearly_opposite": worse["ci95"][0] > better["ci95"][1]}


def claims(out: dict) -> list[str]:
    """The set's two claims, each a comparison of two rows of the same epochs."""
    low, high = out["resolution"]
    pairs = [("resolution", high, low)]
    for res in dict.fromkeys(r["resolution"] for r in out["capacity"]):
        cap = {r["label"].split(" ")[0]: r for r in out["capacity"] if r["resolution"] == res}
        pairs += [(f"width @{res}", cap["wider"], cap["narrower"]),
                  (f"depth @{res}", cap["deeper"], cap["shallower"]),
                  (f"width @{res}", cap["wider"], cap["mbconv-tiny"]),
                  (f"depth @{res}", cap["deeper"], cap["mbconv-tiny"])]
    seeds = out.get("seeds") or []
    top = [r["top1"] for r in seeds]
    spread = max(top) - min(top) if len(top) > 1 else None
    out["claims"] = [{"what": w, **compare(b, s), "seed_range": spread} for w, b, s in pairs]
    lines = [f"- {c['what']}: {c['better']} vs {c['worse']}: {c['difference']:+.1f} points, "
             + ("clearly (95% Wilson intervals disjoint)" if c["clearly"] else
                "clearly the opposite (95% Wilson intervals disjoint)"
                if c["clearly_opposite"] else "not clearly (95% Wilson intervals overlap)")
             + ("" if spread is None else "; beyond the seed range" if abs(c["difference"])
                > spread else "; within the seed range") for c in out["claims"]]
    if seeds:
        half = max((r["ci95"][1] - r["ci95"][0]) / 2 for r in seeds)
        lines += ["", f"Training noise: {seeds[0]['label'].split(' seed')[0]} trained with seeds "
                  f"{', '.join(str(r['seed']) for r in seeds)}: "
                  f"{', '.join(f'{t:.1f}' for t in top)}% (range {max(top) - min(top):.1f} "
                  f"points; a Wilson interval's half-width is at most {half:.1f}). The Wilson "
                  "interval covers the choice of validation images only; a difference within "
                  "the seed range is not a difference between the networks."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
