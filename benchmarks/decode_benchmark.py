"""PNG decoding once: training images per second from the cached array vs from the files.

On Fashion-MNIST (`latency-lab dataset fashion-mnist`) with mbconv-tiny at 32 px, batch 32,
one torch thread, the same training steps are timed five ways, in a rotating order, `repeats`
times each (medians kept; wall and CPU seconds, the DataLoader worker's CPU included):

- files_w1: every image file opened and decoded every epoch in a DataLoader worker (the
  pipeline before the array; workers=1 is the evaluators' default);
- files_w0: the same in the training process;
- array_w0 / array_w1: from the folder decoded once (`latency_lab.training.decoded`), in the
  training process / in a worker: the same pixels, crops and flips;
- preloaded: the batches already in memory as tensors: the model's own speed, the ceiling any
  data pipeline can reach.

And the pipelines alone (no model): images per second of the loader over the same batches,
files vs array, in this process; and the one-time cost of decoding the folder into the
array. The load average is recorded before and after: the machine is shared.
Writes decode_benchmark.{json,md} under --out (default results/benchmarks).
Usage: python benchmarks/decode_benchmark.py --data DIR [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training_benchmark import children_cpu  # noqa: E402


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(data_dir: Path, steps: int, repeats: int, resolution: int = 32,
            batch: int = 32) -> dict:
    import torch
    from torch import nn

    from latency_lab.models.build_torch import build_torch
    from latency_lab.network import presets
    from latency_lab.paths import cache_dir
    from latency_lab.training import decoded
    from latency_lab.training.data import ImageDataset, loader, normalizer, set_epoch
    from latency_lab.training.imagefolder import scan
    from latency_lab.training.train import Recipe, fit_classes, make_optimizer

    torch.set_num_threads(1)
    out: dict = {"data": str(data_dir), "resolution": resolution, "batch": batch,
                 "steps": steps, "repeats": repeats, "load_before": load(),
                 "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    data = scan(data_dir)
    out["train_images"] = len(data.train)
    for path in decoded._paths(data, "train"):       # the one-time decoding, measured
        path.unlink(missing_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    pixels = decoded.pixels(data, "train")
    out["decode_once_s"] = time.perf_counter() - t0
    out["decode_once_cpu_s"] = time.process_time() - c0
    out["array_mb"] = pixels.flat.nbytes / 1e6
    out["cache_dir"] = str(cache_dir())

    spec = fit_classes(presets.get("mbconv-tiny"), data)
    model = build_torch(spec.with_resolution(resolution)).to(memory_format=torch.channels_last)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    norm = normalizer(torch.device("cpu"), channels_last=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    datasets = {"files": ImageDataset(data, "train", resolution, True, 0.5, seed=0),
                "array": ImageDataset(data, "train", resolution, True, 0.5, seed=0,
                                      decoded=pixels)}
    loaders = {f"{src}_w{w}": loader(ds, batch, 0, w, shuffle=True, drop_last=True)
               for src, ds in datasets.items() for w in (0, 1)}
    preloaded = [(x.clone(), y.clone()) for (x, y), _ in zip(loaders["array_w0"],
                                                            range(steps + 1))]

    def train(batches) -> tuple[float, float]:
        model.load_state_dict(start)
        opt = make_optimizer(model, Recipe(batch=batch))
        batches = iter(batches)
        next(batches)                                   # a worker's start is not timed
        t0, c0 = time.perf_counter(), time.process_time() + children_cpu()
        for _, (x, y) in zip(range(steps), batches):
            loss = criterion(model(norm(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0, time.process_time() + children_cpu() - c0

    ways = {"preloaded": lambda r: preloaded,
            **{name: (lambda r, name=name: set_epoch(loaders[name], r + 1)) for name in loaders}}
    train(preloaded)                                    # warm-up
    names = list(ways)
    timed: dict = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            timed[n].append(train(ways[n](r)))
    images = steps * batch
    for n in names:
        wall = statistics.median(t for t, _ in timed[n])
        cpu = statistics.median(c for _, c in timed[n])
        out[n] = {"images_per_s": images / wall, "cpu_ms_per_image": 1000 * cpu / images,
                  "wall_s": [round(t, 2) for t, _ in timed[n]]}

    def pipeline(ds) -> float:                          # the loader alone, in this process
        it = iter(loader(ds, batch, 7, 0, shuffle=True, drop_last=True))
        t0 = time.perf_counter()
        for _ in range(steps):
            next(it)
        return images / (time.perf_counter() - t0)
    for src, ds in datasets.items():
        out[f"pipeline_{src}_images_per_s"] = statistics.median(pipeline(ds)
                                                                 for _ in range(repeats))
    best_files = max(out["files_w0"]["images_per_s"], out["files_w1"]["images_per_s"])
    best_array = max(out["array_w0"]["images_per_s"], out["array_w1"]["images_per_s"])
    out["speedup_training"] = best_array / best_files
    out["speedup_vs_default"] = best_array / out["files_w1"]["images_per_s"]
    out["speedup_pipeline"] = (out["pipeline_array_images_per_s"]
                               / out["pipeline_files_images_per_s"])
    out["ceiling_vs_default"] = (out["preloaded"]["images_per_s"]
                                 / out["files_w1"]["images_per_s"])
    out["load_after"] = load()
    return out


def write(out_dir: Path, r: dict) -> None:
    from latency_lab.fileio import write_atomic

    rows = ["| pipeline | images/s (median) | CPU ms per image | wall s per repeat |",
            "|---|---|---|---|"]
    for n, label in (("files_w1", "files, 1 worker (before)"), ("files_w0", "files, in process"),
                     ("array_w0", "array, in process"), ("array_w1", "array, 1 worker"),
                     ("preloaded", "preloaded batches (the model alone)")):
        rows.append(f"| {label} | {r[n]['images_per_s']:.0f} | {r[n]['cpu_ms_per_image']:.2f} "
                    f"| {', '.join(map(str, r[n]['wall_s']))} |")
    md = [f"# PNG decoding once: mbconv-tiny at {r['resolution']} px on {r['data']}", "",
          f"{r['when']}; load average {r['load_before']} before, {r['load_after']} after; "
          f"{r['steps']} steps of {r['batch']} images per timing, {r['repeats']} repeats in a "
          "rotating order, one torch thread.", "", *rows, "",
          f"- training from the array: {r['speedup_training']:.2f}x the images/s of the best "
          f"file pipeline, {r['speedup_vs_default']:.2f}x the one-worker default (target: "
          f"2x); the model alone reaches {r['ceiling_vs_default']:.2f}x the default, the "
          "ceiling of any data pipeline here",
          f"- the pipeline alone, in process: {r['pipeline_files_images_per_s']:.0f} images/s "
          f"from the files, {r['pipeline_array_images_per_s']:.0f} from the array "
          f"({r['speedup_pipeline']:.2f}x)",
          f"- decoding the {r['train_images']} training images once: {r['decode_once_s']:.1f} s "
          f"({r['decode_once_cpu_s']:.1f} s CPU), {r['array_mb']:.1f} MB cached", ""]
    write_atomic(out_dir / "decode_benchmark.md", "\n".join(md))
    write_atomic(out_dir / "decode_benchmark.json", json.dumps(r, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a Fashion-MNIST image folder")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = ap.parse_args()
    r = measure(args.data, args.steps, args.repeats)
    write(args.out, r)
    print((args.out / "decode_benchmark.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
