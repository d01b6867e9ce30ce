"""A SYNTHETIC accuracy, for running searches where no trained accuracy exists.

It is not a measurement and not a trained network's accuracy: a saturating function of log
width, log depth (per stage) and log resolution, with stage weights loosely ordered like the
RBIS thesis's full-training ranking of single steps (width of the middle stages helps most).
EfficientNet-B0 at 224 scores 76.7. Named `--accuracy synthetic` on the command line
(`SyntheticAccuracy`); every output of a search that used it says SYNTHETIC (stdout,
result.json's `accuracy_synthetic`, summary.md, plot titles), because the evaluator's
`synthetic` says what it is (the function carries the same mark for `py:` callers).
"""

from __future__ import annotations

import functools
import math

from latency_lab.network.presets import efficientnet_b0
from latency_lab.search.evaluators import EvalRequest, EvalResult, Evaluator
from latency_lab.network.spec import NetworkSpec

# Per body stage of EfficientNet-B0 (0..6): accuracy gain per unit log width / log depth.
WIDTH_GAIN = (0.05, 0.10, 0.25, 1.10, 0.95, 0.85, 0.45)
DEPTH_GAIN = (0.05, 0.10, 0.12, 0.30, 0.18, 0.42, 0.10)
RESOLUTION_GAIN = 0.9
ACC_MAX, ACC_B0 = 80.9, 76.7
WHAT = "saturating function of log width, depth and resolution; not a trained accuracy"


def accuracy(network: dict) -> float:
    return spec_accuracy(NetworkSpec.from_dict(network), int(network["resolution"]))


@functools.lru_cache(maxsize=1)
def _b0() -> NetworkSpec:
    return efficientnet_b0()


def spec_accuracy(spec: NetworkSpec, resolution: int) -> float:
    """`accuracy` of a spec as it is (the evaluator's path: no JSON round trip, B0 made once;
    together 40% of the README's offline search's search time)."""
    base = _b0()
    growth = RESOLUTION_GAIN * math.log(int(resolution) / base.resolution)
    for i, (s, b) in enumerate(zip(spec.stages, base.stages)):
        growth += WIDTH_GAIN[i] * math.log(s.width / b.width)
        growth += DEPTH_GAIN[i] * math.log(s.depth / b.depth)
    return ACC_MAX - (ACC_MAX - ACC_B0) * math.exp(-growth)


accuracy.synthetic = WHAT


class SyntheticAccuracy(Evaluator):
    """`--accuracy synthetic`: `accuracy` above, marked SYNTHETIC wherever it is reported."""

    name = "synthetic"
    instant = True
    cacheable = False   # a formula: an SQLite commit per value cost more than the value
    summary = ("a made-up function of width, depth and resolution for trying the search; "
               "SYNTHETIC in every output")
    metric_label = "accuracy (%)"
    synthetic = WHAT

    def evaluate(self, request: EvalRequest) -> EvalResult:
        return EvalResult(spec_accuracy(request.spec, request.resolution))
