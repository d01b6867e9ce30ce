"""Training evaluators: top-1 accuracy (%) on an image folder, from scratch or warm-started.

    train:DATA_DIR[,epochs=10,batch=32,lr=0,opt=sgd,...,seeds=1,device=cpu,workers=1,threads=1]
    net2net:DATA_DIR[,epochs=2,base_epochs=10,...same options]

`train:` trains every candidate from scratch at its resolution with the recipe of
`latency_lab.training.train` and reports top-1 on the held-out split (`val/`, or a seeded split of
`val_fraction`). `net2net:` is the thesis's cheap alternative: the baseline is trained once
for `base_epochs` and cached (see below for its value); a candidate starts from its
parent's trained weights transformed so that it computes exactly the parent's function
(`latency_lab.training.net2net`), then fine-tunes for `epochs`. The search hands each candidate's
parent (`EvalRequest.parent`) and step; the baseline's training uses the same recipe with
`base_epochs` epochs, one warm-up epoch and `base_lr`; fine-tuning has no warm-up and 0.3 of
the training rate unless `lr=` says otherwise (a restart at the full rate cost mbconv-tiny 7
points in one epoch). The baseline's value is its trained weights fine-tuned the same way with
no transform, so that the first iteration's children are compared with a parent that saw the
same epochs and the same restart; the chosen candidate of an iteration is the parent of
the next, so weights are inherited along the RBIS path. A parent whose weights are not in the
cache (another machine, a deleted cache) is rebuilt by replaying its lineage.

Seeds: `seeds=K` trains K times, with seeds seed, seed + 1, ... (net2net: K lineages, the
baseline trained with each seed and every step fine-tuned with it), and the value is the mean
with its 95% Student-t interval over the K values (`n` = K): training noise, which is what
separates two networks evaluated on the same images; `details` has every seed's value and run.
Each training is cached by its own run key, so `seeds=3` after `seeds=2` trains one more, and
a search's race (`search.racing`) adds seeds the same way. With one seed (the default, left
out of the cache key so that older evaluations stay valid) the interval is the 95% Wilson
interval over the validation images, which knows nothing of training noise.

Both report in `details` the data set, the recipe, the run key of the weights, seconds, images/s, and for
`net2net:` whether the transform was exact and the deviation it measured. The cache key holds
every option that changes the number (not workers, threads), the data set's fingerprint
(file list and sizes, split) instead of its path, and the trainer's code version.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import fields, replace
from typing import Any

from latency_lab.search.evaluators import (EvalRequest, EvalResult, Evaluator, EvaluatorError,
                                           Option, evaluates_here)
from latency_lab.search.intervals import mean_ci

NET2NET_VERSION = 2


def _recipe_options(epochs: int, warmup: float) -> dict[str, Option]:
    from latency_lab.training.train import Recipe

    helps = {"epochs": "training epochs", "batch": "images per step",
             "opt": "optimizer", "lr": "base learning rate (0: 0.4 x batch/256 for sgd, "
             "0.016 x batch/256 for rmsprop)", "momentum": "momentum",
             "weight_decay": "L2 on conv and linear weights", "warmup": "linear warm-up epochs",
             "label_smoothing": "label smoothing", "min_scale": "random-resized-crop area from",
             "ema": "EMA decay of the weights per step (0: off)",
             "bn_momentum": "batch-norm momentum", "crop_pct": "evaluation centre crop",
             "seed": "seed of initialisation, data order and augmentation"}
    out = {}
    defaults = Recipe()
    for f in fields(Recipe):
        default = {"epochs": epochs, "warmup": warmup}.get(f.name, getattr(defaults, f.name))
        kind = type(getattr(defaults, f.name))
        out[f.name] = Option(kind, default, helps[f.name],
                             choices=("sgd", "rmsprop") if f.name == "opt" else (),
                             minimum=None if kind is str else
                             (1 if f.name in ("epochs", "batch") else 0))
    return out


def _common_options() -> dict[str, Option]:
    return {
        "seeds": Option(int, 1, "trainings with seeds seed, seed+1, ...: the value is their "
                        "mean, the CI a Student-t interval over them (from 2 seeds on)",
                        minimum=1, omit_default=True),
        "val_fraction": Option(float, 0.2, "held-out share of a seeded split", minimum=0),
        "split_seed": Option(int, 0, "seed of a seeded split", minimum=0),
        "device": Option(str, "cpu", "torch device", ("cpu", "cuda")),
        "amp": Option(bool, True, "mixed precision on CUDA (ignored on the CPU)"),
        "workers": Option(int, 1, "DataLoader workers decoding images", minimum=0, keyed=False),
        "threads": Option(int, 1, "torch CPU threads (one is fastest on a busy 2-core host)",
                          minimum=1, keyed=False),
        "progress": Option(bool, True, "a progress bar per training on a terminal",
                           keyed=False),
        "decode": Option(str, "once", "once: train from the folder decoded once into a "
                         "cached array; files: decode every image file every epoch (the same "
                         "pixels, so the same number)", ("once", "files"), keyed=False),
    }


class TrainEvaluator(Evaluator):
    """`train:DATA_DIR[,...]`: top-1 after training from scratch."""

    name = "train"
    extras = ("torch",)
    summary = "top-1 % on the data set's val/ after training from scratch on its train/"
    metric = "accuracy"
    metric_label = "top-1 accuracy (%)"
    unit = "%"
    ARG = "DATA_DIR"
    arg_in_key = False        # the data set's fingerprint is keyed, not where it lies
    OPTIONS = {**_recipe_options(10, 1.0), **_common_options()}

    def __init__(self, arg=None, options=None):
        super().__init__(arg, options)
        try:
            from latency_lab.training import train as training
            from latency_lab.training.imagefolder import scan
        except ImportError as exc:
            raise EvaluatorError(f"evaluator {self.name} needs {exc.name} "
                                 f"(pip install -e '.[torch]')") from None
        o = self.options
        self.data = scan(arg, o["val_fraction"], o["split_seed"])
        warning = self.data.warning()
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        self.recipe = self._recipe(o["epochs"])
        self.runtime = training.Runtime(device=o["device"], workers=o["workers"],
                                        threads=o["threads"], amp=o["amp"],
                                        progress=o["progress"], decode=o["decode"])
        if evaluates_here():    # no CUDA: one line now, not after the first training
            self.runtime.torch_device()
        self.version = training.TRAINER_VERSION

    def _recipe(self, epochs: int):
        from latency_lab.training.train import Recipe

        o = self.options
        return Recipe(**{f.name: (epochs if f.name == "epochs" else o[f.name])
                         for f in fields(Recipe)})

    def key_parts(self) -> list[str]:
        return [f"data={self.data.fingerprint}"]

    def resources(self):
        """A training's torch threads plus its DataLoader workers, and a GPU on cuda."""
        r = super().resources()
        return type(r)(cpus=r.cpus + self.options["workers"], gpus=r.gpus)

    def _train(self, spec, resolution: int, recipe, init: str = "scratch", init_weights=None):
        from latency_lab.training.train import train

        t0 = time.perf_counter()
        run = train(spec, resolution, self.data, recipe, self.runtime, init=init,
                    init_weights=init_weights)
        if not run.cached:
            h = run.history[-1]
            print(f"{self.name}: {spec.name} ({spec.fingerprint}) @{resolution} "
                  f"{recipe.epochs} epoch(s) -> top-1 {run.top1:.2f}% "
                  f"({time.perf_counter() - t0:.0f} s, {h['images_per_s']:.0f} images/s)",
                  file=sys.stderr, flush=True)
        return run

    def seed_list(self) -> list[int]:
        """The seeds of the trainings a value averages: seed, seed + 1, ..."""
        return [self.recipe.seed + i for i in range(self.options["seeds"])]

    def _result(self, runs: list, t0: float, **extra: Any) -> EvalResult:
        """One training: its top-1 with the Wilson interval over the validation images. K
        seeds: the mean with the Student-t interval over the K values (training noise on this
        validation set), and per seed its value, run and seconds in `details`."""
        n = len(self.data.val)
        run = runs[0]
        h = run.history[-1] if run.history else {}
        values = [r.top1 for r in runs]
        mean, ci = mean_ci(values)
        details = {"data": self.data.fingerprint, "data_dir": str(self.data.root),
                   "val_images": n, "recipe": run_recipe(run), "run": run.key,
                   "epochs": run.epochs, "train_seconds": sum(r.train_seconds for r in runs),
                   "images_per_s": h.get("images_per_s"), "final_loss": h.get("loss"),
                   "resumed_from": run.resumed_from, "from_weights_cache": run.cached,
                   "seeds": self.seed_list(), "seed_values": values, "wilson": wilson(mean, n),
                   **extra}
        if len(runs) > 1:
            details.update(ci=f"Student-t 95% over {len(runs)} seeds", runs=[r.key for r in runs],
                           seed_train_seconds=[r.train_seconds for r in runs],
                           seed_sd=statistics.stdev(values),
                           seed_range=max(values) - min(values))
            return EvalResult(mean, len(runs), ci, time.perf_counter() - t0, details)
        details["ci"] = "Wilson 95% over the validation images"
        return EvalResult(run.top1, 1, wilson(run.top1, n), time.perf_counter() - t0, details)

    def evaluate(self, request: EvalRequest) -> EvalResult:
        t0 = time.perf_counter()
        runs = [self._train(request.spec, request.resolution, replace(self.recipe, seed=s),
                            init=f"scratch(seed={s})") for s in self.seed_list()]
        return self._result(runs, t0)


class Net2NetEvaluator(TrainEvaluator):
    """`net2net:DATA_DIR[,...]`: top-1 after fine-tuning from the parent's weights."""

    name = "net2net"
    summary = ("top-1 % after fine-tuning from the parent's weights (function-preserving "
               "width and depth steps)")
    uses_parent = True
    OPTIONS = {**_recipe_options(2, 0.0), **_common_options(),
               "lr": Option(float, 0.0, "fine-tuning learning rate (0: 0.3 x train:'s, "
                            "0.12 x batch/256 for sgd)", minimum=0),
               "base_epochs": Option(int, 10, "epochs of the baseline's training", minimum=1),
               "base_lr": Option(float, 0.0, "the baseline's learning rate (0: train:'s rule)",
                                 minimum=0)}

    def __init__(self, arg=None, options=None):
        super().__init__(arg, options)
        o = self.options
        # the baseline's training: the same recipe for base_epochs, one warm-up epoch
        self.base_recipe = replace(self._recipe(o["base_epochs"]), warmup=1.0, lr=o["base_lr"])
        if not o["lr"]:
            self.recipe = replace(self.recipe, lr=0.3 * replace(self.recipe, lr=0.0).base_lr)
        self.version = self.version * 1000 + NET2NET_VERSION

    def weights_of(self, request: EvalRequest, seed: int):
        """The run whose weights `request`'s children start from: the baseline's training
        for the baseline, the candidate's own fine-tuning otherwise (each seed has its own
        lineage: the baseline trained with that seed, every step fine-tuned with it)."""
        if request.parent is None:
            return self._train(request.spec, request.resolution,
                               replace(self.base_recipe, seed=seed), init=f"scratch(seed={seed})")
        return self.run_for(request, seed)[0]

    def run_for(self, request: EvalRequest, seed: int):
        """The fine-tuning run that gives `request` its value, replaying the lineage when a
        parent's weights are not cached, and the transform's report. The baseline is
        fine-tuned too, from its own trained weights with no transform: a control that saw
        the same epochs and the same restart as its children (measured: with the baseline
        valued at the end of its schedule, 52.75%, all four children of mbconv-tiny's first
        iteration came out at 51.00% after one epoch at a tenth of the rate, so every RBIS
        score was 0 and the search took the cheapest candidate)."""
        import torch

        from latency_lab.models.build_torch import build_torch
        from latency_lab.training.net2net import Net2NetError, max_deviation, transfer
        from latency_lab.training.train import fit_classes, load_weights

        origin = request.parent if request.parent is not None else request
        parent_run = self.weights_of(origin, seed)
        parent_spec = fit_classes(origin.spec, self.data)
        parent = build_torch(parent_spec.with_resolution(request.resolution))
        parent.load_state_dict(load_weights(parent_run))
        try:
            child, report = transfer(parent, fit_classes(request.spec, self.data), seed=seed,
                                     init_seed=seed)
        except Net2NetError as exc:
            raise EvaluatorError(f"evaluator {self.name}: {exc}") from None
        threads = torch.get_num_threads()
        torch.set_num_threads(self.runtime.threads)
        try:
            deviation = max_deviation(parent, child, int(request.resolution))
        finally:
            torch.set_num_threads(threads)
        state = {k: v.clone() for k, v in child.state_dict().items()}
        step = "none" if request.parent is None else (request.step.label if request.step
                                                      else "?")
        init = f"net2net(parent={parent_run.key},step={step},seed={seed})"
        run = self._train(request.spec, request.resolution, replace(self.recipe, seed=seed),
                          init=init, init_weights=lambda: state)
        return run, {"parent_run": parent_run.key, "step": step, "exact": report.exact,
                     "deviation": deviation, "notes": report.notes,
                     "widened": report.widened, "new_blocks": report.new_blocks}

    def evaluate(self, request: EvalRequest) -> EvalResult:
        t0 = time.perf_counter()
        done = [self.run_for(request, s) for s in self.seed_list()]
        role = "baseline" if request.parent is None else "fine-tuned"
        extra = {"base_epochs": self.base_recipe.epochs} if request.parent is None else {}
        return self._result([run for run, _ in done], t0, role=role, transform=done[0][1],
                            parent_runs=[t["parent_run"] for _, t in done], **extra)


def run_recipe(run) -> dict:
    import json

    try:
        return json.loads((run.folder / "result.json").read_text())["recipe"]
    except (OSError, ValueError, KeyError):
        return {}


def wilson(top1: float, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """95% Wilson score interval (%) of a proportion `top1` % observed on `n` images."""
    if n <= 0:
        return None
    p = top1 / 100.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


__all__ = ["TrainEvaluator", "Net2NetEvaluator", "wilson"]
