"""Zero-shot evaluators: Zen-Score (`zen`) and the thesis's tuned Zen-Score (`zen-tuned`).

Zen-Score as Zen-NAS computes it (idstcv/ZenNAS, `ZeroShotProxy/compute_zen_score.py`, read
for this module), on the network built by `latency_lab.models.build_torch`:

1. every conv and linear weight ~ N(0, 1), biases 0, BN gamma 1 and beta 0 (Zen-NAS's
   `network_weight_gaussian_init`); BN running statistics fresh (mean 0, var 1);
2. x, eps ~ N(0, 1) of shape [batch, 3, R, R] at the candidate's resolution R;
   x_mix = x + gamma * eps (gamma = 0.01, Zen-NAS's `mixup_gamma`);
3. the model in train mode (BN normalises with batch statistics) with **every residual link
   removed** (Zen-NAS scores `no_reslink=True` networks); f = the feature map before global
   pooling (`forward_features`: after the head conv, BN, activation);
4. delta = mean over the batch of sum |f(x) - f(x_mix)| over channels and positions;
5. score = log(delta) + sum over BN layers of log sqrt(mean(running_var)). As in Zen-NAS's
   code the running variances are read after the two forward passes with PyTorch's default
   BN momentum 0.1, i.e. 0.81 + 0.09 var(x-batch) + 0.1 var(x_mix-batch) per channel (our
   builder's momentum, 0.01, is set to 0.1 while scoring).

Each repeat draws new weights and inputs from its own generator seeded by (seed, repeat), so
the same network, resolution and options give the same score on the same machine (tested to
1e-6; sums are accumulated in float64). With repeats > 1 the value is their mean and the 95%
CI is Student's t interval (Zen-NAS reports 1.96 std / sqrt(n)). Weights and inputs are drawn
on the CPU and copied to the device, so `device=cuda` sees the same numbers.

**Squeeze-and-excitation is removed while scoring** (`se=drop`, the default; `se=keep`
scores it): under N(0, 1) weights with no BN inside the SE branch, the gate's pre-activation
is a sum of tens to hundreds of unit-scale terms and the sigmoid saturates. Measured on B0 at
224 (`benchmarks/zen_benchmark.py`): 80% of the SE gate values are below 0.01 or above 0.99,
40% below 0.01, so SE switches a random ~40% of each block's expanded channels off and the
score describes that thinned network, drawn anew at every seed, not the architecture; the
repeat-to-repeat spread doubles (8 draws: std 0.155 with SE, 0.078 without), so one width
step on stage 3 (+0.28) stands 1.8 std above B0's score instead of 3.5. Zen-NAS
itself scores SE-free networks (`use_se` is off by default and none of its ImageNet search
scripts we read turns it on; its SE, when on, has BN layers inside, which ours has not).

**Swish is kept** (the spec's activation): it is the network's own nonlinearity, Zen-Score's
finite difference needs no piecewise-linear activation, and BN in train mode keeps its inputs
at unit scale where swish is far from saturation; every candidate of a search shares it, so it
cannot favour one.

`zen-tuned` divides the Zen-Score by the number of conv blocks, the thesis's fix for plain
Zen-Score growing with depth without saturating. Counted: the stem conv block, every MBConv
block of every stage and the head conv block (the sites of `latency_lab.network.blocks.
network_blocks`: 18 for EfficientNet-B0), i.e. 2 + the sum of the stage depths.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from latency_lab.network.spec import NetworkSpec
from latency_lab.search.intervals import mean_ci
from latency_lab.search.evaluators import (EvalRequest, EvalResult, Evaluator, EvaluatorError,
                                           Option, evaluates_here)

ZEN_BN_MOMENTUM = 0.1   # PyTorch's default, which Zen-NAS's BN layers use


def conv_blocks(spec: NetworkSpec) -> int:
    """Stem + every MBConv block + head (the sites of the one walk over the network's
    blocks): what the tuned Zen-Score divides by."""
    from latency_lab.network.blocks import network_blocks

    return len(network_blocks(spec))


def without_se(spec: NetworkSpec) -> NetworkSpec:
    """The same network with squeeze-and-excitation left out of every stage."""
    return replace(spec, stages=tuple(replace(s, se_ratio=0.0) for s in spec.stages))


def _repeat_seed(seed: int, repeat: int) -> int:
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1, np.uint64)[0] >> 1)


def gaussian_init(model, generator) -> None:
    """Zen-NAS's init, drawn on the CPU from `generator`; BN statistics reset."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.reset_running_stats()
                m.momentum = ZEN_BN_MOMENTUM


def zen_score_once(model, batch: int, resolution: int, gamma: float, seed: int,
                   device: str) -> dict[str, float]:
    """One Zen-Score draw: {'score', 'log_delta', 'log_bn'} (see the module docstring)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    gaussian_init(model, g)
    x = torch.randn((batch, 3, resolution, resolution), generator=g)
    eps = torch.randn((batch, 3, resolution, resolution), generator=g)
    x, x_mix = x.to(device), (x + gamma * eps).to(device)
    model.train()
    with torch.no_grad():
        f = model.forward_features(x)
        f_mix = model.forward_features(x_mix)
        delta = (f - f_mix).abs().double().sum(dim=(1, 2, 3)).mean().item()
        log_bn = sum(math.log(math.sqrt(m.running_var.double().mean().item()))
                     for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    log_delta = math.log(delta) if delta > 0 else -math.inf
    return {"score": log_delta + log_bn, "log_delta": log_delta, "log_bn": log_bn}


class ZenScore(Evaluator):
    """`zen[,batch=16,repeats=1,seed=0,gamma=0.01,se=drop,device=cpu,threads=1]`."""

    name = "zen"
    extras = ("torch",)
    summary = ("Zen-Score (Zen-NAS): a zero-shot proxy score of an untrained network, not an "
               "accuracy")
    metric = "zen_score"
    metric_label = "Zen-Score"
    unit = ""
    version = 1
    OPTIONS = {
        "batch": Option(int, 16, "images per forward pass", minimum=2),
        "repeats": Option(int, 1, "independent draws averaged (CI from 2 on)", minimum=1),
        "seed": Option(int, 0, "seed of the weight and input draws", minimum=0),
        "gamma": Option(float, 0.01, "perturbation size (Zen-NAS's mixup_gamma)", minimum=0),
        "se": Option(str, "drop", "squeeze-and-excitation while scoring", ("drop", "keep")),
        "device": Option(str, "cpu", "torch device", ("cpu", "cuda")),
        # Not in the cache key: 1 and 2 threads give bit-identical scores (B0 and a small
        # network, measured). On this shared 2-core machine one B0 evaluation (224 px) took
        # 2.8 s with threads=1 and 4.5 s with the default 2 threads at load 2.3-3.1, 7.7 s and
        # 18.8 s at load 7-10 (OpenMP workers spin-waiting): results/benchmarks/zen_benchmark.md
        # and its earlier version in commit 9fad0d1. So one thread by default (as `train`),
        # 0 for torch's own choice.
        "threads": Option(int, 1, "torch CPU threads (0: torch's default; one is fastest on a "
                          "busy 2-core host)", minimum=0, keyed=False),
    }

    def __init__(self, arg=None, options=None):
        super().__init__(arg, options)
        try:
            import torch
        except ImportError:
            raise EvaluatorError(f"evaluator {self.name} needs torch "
                                 f"(pip install -e '.[torch]')") from None
        if self.options["device"] == "cuda" and evaluates_here() and \
                not torch.cuda.is_available():
            raise EvaluatorError(f"evaluator {self.name}: device=cuda, but this torch "
                                 f"({torch.__version__}) sees no CUDA device")

    def scores(self, spec: NetworkSpec, resolution: int) -> tuple[list[dict], int]:
        """Every repeat's draw, and the number of BN layers of the network as scored."""
        import torch
        from torch import nn

        from latency_lab.models.build_torch import build_torch

        o = self.options
        scored = without_se(spec) if o["se"] == "drop" else spec
        what = f"{spec.name} ({spec.fingerprint}) at {resolution}"
        threads = torch.get_num_threads()
        if o["threads"]:
            torch.set_num_threads(o["threads"])
        try:
            model = build_torch(scored.with_resolution(resolution))
            model.set_residual(False)
            # Contiguous (NCHW) on purpose: channels-last ran B0 at 224 (batch 16, one thread,
            # load 10) 1.45 s per forward against 2.5 s, but its sums then depend on the thread
            # count (2.4e-6 apart between 1 and 2 threads); contiguous gives bit-identical
            # scores for any thread count, so workers with different CPU counts agree and
            # `threads` stays out of the cache key.
            model = model.to(o["device"])
            bn_layers = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
            return [zen_score_once(model, o["batch"], int(resolution), o["gamma"],
                                   _repeat_seed(o["seed"], i), o["device"])
                    for i in range(o["repeats"])], bn_layers
        except (RuntimeError, ValueError, MemoryError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EvaluatorError(f"evaluator {self.name} cannot build or run {what}: "
                                 f"{first}") from None
        finally:
            torch.set_num_threads(threads)
            if o["device"] == "cuda":
                torch.cuda.empty_cache()

    def transform(self, score: float, spec: NetworkSpec) -> float:
        return score

    def evaluate(self, request: EvalRequest) -> EvalResult:
        t0 = time.perf_counter()
        draws, bn_layers = self.scores(request.spec, request.resolution)
        values = [self.transform(d["score"], request.spec) for d in draws]
        bad = [d for d in draws if not math.isfinite(d["score"])]
        if bad:
            d = bad[0]
            raise EvaluatorError(
                f"evaluator {self.describe()} got a non-finite Zen-Score for "
                f"{request.describe()} (log delta {d['log_delta']}, BN term {d['log_bn']}): "
                f"the features did not respond to the perturbation or overflowed; try "
                f"another gamma or seed")
        mean, ci = mean_ci(values)
        details: dict[str, Any] = {
            "repeats": values, "log_delta": [d["log_delta"] for d in draws],
            "log_bn": [d["log_bn"] for d in draws], "conv_blocks": conv_blocks(request.spec),
            "bn_layers": bn_layers, "torch": _torch_version()}
        return EvalResult(mean, len(values), ci, time.perf_counter() - t0, details)


class TunedZenScore(ZenScore):
    """`zen-tuned[,...]`: Zen-Score / conv blocks (stem + MBConv blocks + head)."""

    name = "zen-tuned"
    summary = "Zen-Score divided by the number of conv blocks (the thesis's tuned proxy)"
    metric = "zen_tuned_score"
    metric_label = "tuned Zen-Score (Zen-Score / conv blocks)"

    def transform(self, score: float, spec: NetworkSpec) -> float:
        return score / conv_blocks(spec)


def _torch_version() -> str:
    import torch

    return torch.__version__


__all__ = ["ZenScore", "TunedZenScore", "conv_blocks", "without_se", "zen_score_once",
           "gaussian_init", "mean_ci"]
