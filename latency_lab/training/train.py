"""Train a network of `NetworkSpec` on an image folder and report its top-1 accuracy (%).

The recipe (`Recipe`) is EfficientNet's (Tan & Le 2019: RMSProp, warm-up, label smoothing
0.1, weight decay, EMA of the weights) scaled down to minutes on a CPU: SGD with Nesterov
momentum by default (RMSProp on request: `opt=rmsprop`), a linear warm-up then a cosine decay
to zero over the run, label smoothing 0.1, weight decay 5e-5 on conv and linear weights only,
random-resized-crop (area 50-100%: the images are small and their classes live partly in fine
detail) and flip, an optional EMA of the weights (`ema=0.99`), batch 32, batch-norm momentum
0.1 instead of Keras's 0.01, because a short run takes a few hundred steps, not a few hundred
thousand. The base learning rate scales linearly with the batch unless `lr=` is given:
0.016 x batch / 256 for RMSProp as in EfficientNet; for SGD 0.4 x batch / 256 (0.05 at batch
32), four times Goyal et al.'s 0.1, since a run of a few hundred steps has no time for a small
rate: on an early version of the synthetic set, 10 epochs of 1000 images at 64 px reached 15%
top-1 at 0.025 and 19% at 0.1 (batch 32), and on the final set 52% at 64 px and 89% at 96 px
with 0.05.

Every run is keyed (`run_key`) by everything that changes its weights: network fingerprint,
resolution, data set fingerprint, recipe, initialisation (scratch with a seed, or a parent's
weights and the transform that made them), device kind and mixed precision. Its folder in the
cache (`training/<key>/`) holds `checkpoint.pt`, written whole after every epoch, so a killed
run resumes at the epoch after the last one written, and, once done, `final.pt` (the weights
used for evaluation, kept for later warm starts) and `result.json`. A finished run asked again
is read back, not retrained. Seeds are fixed; the data order and augmentation depend only on
(seed, epoch, image), so a resumed run computes what the uninterrupted one would have.
A loss that turns NaN or infinite stops the run with one `TrainingDiverged` error.

Threads: one intra-op thread by default on the CPU. On this 2-core machine shared with other
jobs, a tiny MBConv network at 64 px trained at 138 images/s with one thread and 25 with two
(OpenMP workers spin-wait on cores that other processes hold), and channels-last memory
doubled the one-thread figure (288 images/s), so both are the defaults.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from latency_lab.errors import UserError
from latency_lab.fileio import atomic_path, write_atomic
from latency_lab.training.imagefolder import ImageFolder
from latency_lab.network.spec import NetworkSpec
from latency_lab.training.data import ImageDataset, loader, normalizer, set_epoch

TRAINER_VERSION = 1


class TrainingError(UserError):
    """A training that cannot run (bad recipe, no CUDA, unusable checkpoint)."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class Recipe:
    """Everything of a training run that changes its result (see the module docstring)."""

    epochs: int = 10
    batch: int = 32
    opt: str = "sgd"
    lr: float = 0.0                  # 0: the linear scaling rule for `opt`
    momentum: float = 0.9
    weight_decay: float = 5e-5
    warmup: float = 1.0              # epochs (fractions allowed)
    label_smoothing: float = 0.1
    min_scale: float = 0.5           # random-resized-crop area range [min_scale, 1]
    ema: float = 0.0                 # 0: no EMA; else the EMA decay per step
    bn_momentum: float = 0.1
    crop_pct: float = 0.875          # evaluation centre crop
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [("epochs", self.epochs >= 1, "at least 1"), ("batch", self.batch >= 1, "at least 1"),
                  ("opt", self.opt in ("sgd", "rmsprop"), "sgd or rmsprop"),
                  ("lr", self.lr >= 0 and math.isfinite(self.lr), "a non-negative number"),
                  ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
                  ("weight_decay", self.weight_decay >= 0, "non-negative"),
                  ("warmup", 0 <= self.warmup <= self.epochs, "in [0, epochs]"),
                  ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
                  ("min_scale", 0 < self.min_scale <= 1, "in (0, 1]"),
                  ("ema", 0 <= self.ema < 1, "in [0, 1)"),
                  ("bn_momentum", 0 < self.bn_momentum <= 1, "in (0, 1]"),
                  ("crop_pct", 0 < self.crop_pct <= 1, "in (0, 1]")]
        for name, ok, what in checks:
            if not ok:
                raise TrainingError(f"{name}={getattr(self, name)} must be {what}")

    @property
    def base_lr(self) -> float:
        if self.lr:
            return self.lr
        return (0.4 if self.opt == "sgd" else 0.016) * self.batch / 256

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up from 0, then cosine to 0 at the end of the run."""
        total = self.epochs * steps_per_epoch
        warm = self.warmup * steps_per_epoch
        if step < warm:
            return self.base_lr * (step + 1) / warm
        progress = (step - warm) / max(1.0, total - warm)
        return self.base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Runtime:
    """How a run is executed; only `device` kind and `amp` change results (they are keyed)."""

    device: str = "cpu"
    workers: int = 1
    threads: int = 1
    amp: bool = True                 # mixed precision, used on CUDA only
    progress: bool = True            # a progress bar on a terminal
    decode: str = "once"             # "once": from the cached array (training.decoded);
    #                                  "files": every image file read every epoch

    def __post_init__(self) -> None:
        if self.decode not in ("once", "files"):
            raise TrainingError(f"decode={self.decode!r}: use once or files")

    def torch_device(self) -> torch.device:
        try:
            dev = torch.device(self.device)
        except RuntimeError:
            raise TrainingError(f"device={self.device!r}: use cpu or cuda") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("device=cuda but torch sees no CUDA GPU here")
        if dev.type not in ("cpu", "cuda"):
            raise TrainingError(f"device={self.device!r}: use cpu or cuda")
        return dev

    def pixels(self, data: ImageFolder, split: str):
        """The split decoded once (None: read the files): the same pixels either way."""
        if self.decode == "files":
            return None
        from latency_lab.training.decoded import pixels

        return pixels(data, split)

    def key(self) -> dict:
        dev = self.torch_device()
        return {"device": dev.type, "amp": bool(self.amp and dev.type == "cuda")}


@dataclass
class RunResult:
    top1: float                      # % on the validation split
    key: str
    folder: Path
    epochs: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0            # epochs found done in a checkpoint
    cached: bool = False

    @property
    def weights(self) -> Path:
        return self.folder / "final.pt"


def fit_classes(spec: NetworkSpec, data: ImageFolder) -> NetworkSpec:
    """`spec` with as many outputs as the data set has classes (a 1000-class preset trained on
    a 10-class folder gets a 10-way classifier; everything before it is unchanged)."""
    n = len(data.classes)
    return spec if spec.num_classes == n else replace(spec, num_classes=n)


def run_key(spec: NetworkSpec, resolution: int, data: ImageFolder, recipe: Recipe,
            init: str, runtime: Runtime) -> str:
    d = {"trainer": TRAINER_VERSION, "network": spec.fingerprint, "resolution": int(resolution),
         "data": data.fingerprint, "recipe": recipe.to_dict(), "init": init, **runtime.key()}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]


def runs_dir() -> Path:
    from latency_lab.paths import cache_dir

    return cache_dir() / "training"


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv and linear weights, none on biases and batch-norm parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    other = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _decay_groups(model, recipe.weight_decay)
    if recipe.opt == "rmsprop":   # TF's RMSProp: decay 0.9, eps 1e-3 (EfficientNet)
        return torch.optim.RMSprop(groups, lr=recipe.base_lr, alpha=0.9, eps=1e-3,
                                   momentum=recipe.momentum)
    return torch.optim.SGD(groups, lr=recipe.base_lr, momentum=recipe.momentum, nesterov=True)


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # a foreign or damaged file: say which, once
        raise TrainingError(f"cannot read {path} ({type(exc).__name__}: {exc}); delete it to "
                            f"start the run over") from None


def evaluate(model: nn.Module, data: ImageFolder, resolution: int, recipe: Recipe,
             runtime: Runtime, batch: int = 128) -> float:
    """Top-1 (%) of `model` on the validation split (centre crop), in eval mode."""
    dev = runtime.torch_device()
    norm = normalizer(dev, channels_last=True)
    ds = ImageDataset(data, "val", resolution, train=False, crop_pct=recipe.crop_pct,
                      decoded=runtime.pixels(data, "val"))
    model.eval()
    correct = total = 0
    with torch.no_grad(), torch.autocast(dev.type, enabled=runtime.key()["amp"]):
        for x, y in loader(ds, batch, 0, runtime.workers, shuffle=False):
            pred = model(norm(x)).argmax(1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    return 100.0 * correct / total


def train(spec: NetworkSpec, resolution: int, data: ImageFolder, recipe: Recipe,
          runtime: Runtime = Runtime(), init: str = "scratch",
          init_weights: Callable[[], dict] | None = None,
          log: Callable[[str], None] | None = None) -> RunResult:
    """Train (or resume, or read back) one run; see the module docstring.

    `init` names the initialisation for the run key; `init_weights()` gives the starting
    state dict (None: `build_torch`'s initialisation seeded with `recipe.seed`). The
    classifier is sized to the data set's classes (`fit_classes`).
    """
    from latency_lab.models.build_torch import build_torch

    spec = fit_classes(spec, data)

    key = run_key(spec, resolution, data, recipe, init, runtime)
    folder = runs_dir() / key
    done = folder / "result.json"
    if done.exists() and (folder / "final.pt").exists():
        d = json.loads(done.read_text())
        return RunResult(d["top1"], key, folder, d["epochs"], d["train_seconds"], d["history"],
                         d.get("resumed_from", 0), cached=True)
    dev = runtime.torch_device()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, runtime.threads))
    try:
        model = build_torch(spec.with_resolution(resolution), seed=recipe.seed)
        if init_weights is not None:
            model.load_state_dict(init_weights())
        result = _fit(model, spec, resolution, data, recipe, runtime, dev, key, folder, init, log)
    finally:
        torch.set_num_threads(threads)
    return result


def _fit(model, spec, resolution, data, recipe, runtime, dev, key, folder, init, log):
    from latency_lab.training.progress import progress_bar

    run = _Run(model, spec, resolution, recipe, runtime, dev, key, folder)
    start = run.resume()
    ds = ImageDataset(data, "train", resolution, train=True, min_scale=recipe.min_scale,
                      seed=recipe.seed, decoded=runtime.pixels(data, "train"))
    steps = len(ds) // recipe.batch or 1
    batches = loader(ds, recipe.batch, start, runtime.workers, shuffle=True,
                     drop_last=len(ds) >= recipe.batch, pin=dev.type == "cuda")
    with progress_bar(run.label, recipe.epochs, steps, enabled=runtime.progress) as bar:
        bar.advance_epochs(start)
        for epoch in range(start, recipe.epochs):
            h = run.epoch(set_epoch(batches, epoch), epoch, steps, bar)
            run.checkpoint()
            if log:
                log(f"{run.label} epoch {epoch + 1}/{recipe.epochs}: loss {h['loss']:.3f}, "
                    f"train top-1 {h['train_top1']:.1f}%, {h['images_per_s']:.0f} images/s")
    return run.finish(data, init, start)


class _Run:
    """One training's state: model, optimizer, loss scaler, EMA, history; checkpointed."""

    def __init__(self, model, spec, resolution, recipe, runtime, dev, key, folder):
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = recipe.bn_momentum
        self.model = model.to(dev, memory_format=torch.channels_last)
        self.spec, self.resolution, self.recipe, self.runtime = spec, resolution, recipe, runtime
        self.dev, self.key, self.folder = dev, key, folder
        self.label = f"{spec.name} @{resolution}"
        self.opt = make_optimizer(self.model, recipe)
        self.amp = runtime.key()["amp"]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = (torch.optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(recipe.ema),
            use_buffers=True) if recipe.ema else None)
        self.norm = normalizer(dev, channels_last=True)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.history: list[dict] = []
        self.seconds = 0.0
        self.path = folder / "checkpoint.pt"

    def resume(self) -> int:
        """Load the checkpoint if there is one; the number of epochs it holds."""
        if not self.path.exists():
            return 0
        ck = _load(self.path)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.scaler.load_state_dict(ck["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(ck["ema"])
        self.history, self.seconds = ck["history"], ck["train_seconds"]
        return ck["epoch"]

    def epoch(self, batches, epoch: int, steps: int, bar) -> dict:
        self.model.train()
        t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for i, (x, y) in enumerate(batches):
            lr = self.recipe.lr_at(epoch * steps + i, steps)
            for g in self.opt.param_groups:
                g["lr"] = lr
            y = y.to(self.dev, non_blocking=True)
            with torch.autocast(self.dev.type, enabled=self.amp):
                out = self.model(self.norm(x))
                loss = self.criterion(out.float(), y)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"training of {self.spec.name} ({self.spec.fingerprint}) at "
                    f"{self.resolution} px diverged: loss {value} at epoch {epoch + 1}, step "
                    f"{i + 1} (lr {lr:.3g}); try a lower lr= or a longer warmup=")
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            loss_sum += value * len(y)
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
            bar.step(value)
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.history.append({"epoch": epoch + 1, "loss": loss_sum / seen,
                             "train_top1": 100.0 * correct / seen, "seconds": dt,
                             "images_per_s": seen / dt})
        return self.history[-1]

    def checkpoint(self) -> None:
        _save({"epoch": len(self.history) and self.history[-1]["epoch"],
               "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
               "scaler": self.scaler.state_dict(),
               "ema": self.ema.state_dict() if self.ema else None, "history": self.history,
               "train_seconds": self.seconds, "key": self.key}, self.path)

    def finish(self, data: ImageFolder, init: str, resumed_from: int) -> RunResult:
        """Evaluate, keep the final weights and the result; the checkpoint is no longer needed."""
        final = self.ema.module if self.ema is not None else self.model
        top1 = evaluate(final, data, self.resolution, self.recipe, self.runtime)
        _save({k: v.detach().cpu().contiguous() for k, v in final.state_dict().items()},
              self.folder / "final.pt")
        r = self.recipe
        d = {"top1": top1, "key": self.key, "network": self.spec.fingerprint,
             "name": self.spec.name, "resolution": self.resolution, "data": data.fingerprint,
             "recipe": r.to_dict(), "init": init, **self.runtime.key(), "epochs": r.epochs,
             "train_seconds": self.seconds, "history": self.history,
             "resumed_from": resumed_from}
        write_atomic(self.folder / "result.json", json.dumps(d, indent=1))
        self.path.unlink(missing_ok=True)
        return RunResult(top1, self.key, self.folder, r.epochs, self.seconds, self.history,
                         resumed_from)


def load_weights(result: RunResult) -> dict:
    return _load(result.weights)


__all__ = ["Recipe", "Runtime", "RunResult", "TrainingError", "TrainingDiverged", "train",
           "evaluate", "run_key", "runs_dir", "load_weights", "make_optimizer", "fit_classes"]
