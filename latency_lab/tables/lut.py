"""The per-block lookup table (LUT): predict a network's latency from its blocks' latencies.

In the spirit of the lookup tables of ProxylessNAS and Once-for-All (one per resolution): a
LUT holds, for one device context, the latency of every distinct block that RBIS-scaled
versions of a network can contain, each measured as a one-block model at its input size
(`lut_record.record_lut`), and a few whole networks measured with them to calibrate the
predictor. This module is the model: the table, its prediction and its calibration. Its file
format (JSON, validated on load) is `lut_file.py`; recording it on a device is `lut_record.py`.

`Lut.predict(spec, resolution)` sums the network's block latencies (the median, or the 5th
percentile on a shared machine: see STATISTICS) and applies the
calibration that predicted the calibration networks best in leave-one-out: the plain sum, a
fixed per-network offset (the sum counts one interpreter call per block, the network makes
one), a scale, or both. The leave-one-out error is the predictor's expected error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from latency_lab.errors import UserError
from latency_lab.measure.api import DeviceInfo
from latency_lab.network.blocks import BlockModel, describe_point, network_blocks
from latency_lab.network.spec import NetworkSpec

OVERHEAD_MODELS = ("sum", "offset", "scale", "affine")
# Which statistic of each block's and network's samples the LUT adds up and predicts. "median"
# is the project's headline figure; "p5" (5th percentile) estimates the uncontended latency
# on a shared machine, where other processes preempt long runs (whole networks) far more often
# than short ones (single blocks), which biases a sum of block medians (benchmarks/lut_benchmark).
STATISTICS = ("median", "p5")
# A calibration network whose median is known only to +-5% cannot calibrate a predictor meant
# to be right within 5% (on a loaded machine whole-network medians wander by 30%+, see
# results/benchmarks/lut_benchmark.json): with the median statistic such points are left out of
# the fit. (The stored CI is the median's; it says nothing about a p5's precision.)
MAX_CALIBRATION_CI_PCT = 5.0


class LutError(UserError):
    """A LUT file that cannot be used, or a network it does not cover; message for the user."""


# -- the table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockRow:
    block: BlockModel
    input_size: int
    latency_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n_samples: int
    std_ms: float = float("nan")
    stop_reason: str = ""
    p5_ms: float = float("nan")

    def value(self, statistic: str) -> float:
        return self.latency_ms if statistic == "median" else self.p5_ms


@dataclass(frozen=True)
class CalibrationPoint:
    """A whole network measured for the fit: `measured_ms` and `sum_ms` are the LUT's statistic
    (median or p5) of the network and the sum of that statistic over its blocks."""

    network: str
    fingerprint: str
    resolution: int
    measured_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n_samples: int
    sum_ms: float


@dataclass(frozen=True)
class Overhead:
    """predicted = scale * sum_ms + offset_ms; `loo_rms_pct` per candidate model."""

    model: str = "sum"
    scale: float = 1.0
    offset_ms: float = 0.0
    loo_rms_pct: dict[str, float] = field(default_factory=dict)
    loo_max_pct: dict[str, float] = field(default_factory=dict)
    n_points: int = 0      # calibration networks the fit used
    n_excluded: int = 0    # left out as too imprecise (MAX_CALIBRATION_CI_PCT)

    @property
    def expected_error_pct(self) -> float | None:
        """Leave-one-out RMS relative error of the chosen model; None without calibration."""
        v = self.loo_rms_pct.get(self.model)
        return None if v is None or math.isnan(v) else v


def _fit(model: str, sums: Sequence[float], measured: Sequence[float]) -> tuple[float, float]:
    """(scale, offset) of `model` by least squares on relative error (each network alike)."""
    import numpy as np

    s, m = np.asarray(sums, float), np.asarray(measured, float)
    if model == "sum" or len(s) == 0:
        return 1.0, 0.0
    w = 1 / m  # minimise relative, not absolute, residuals
    if model == "offset":
        return 1.0, float(np.sum(w * w * (m - s)) / np.sum(w * w))
    if model == "scale":
        return float(np.sum(w * w * s * m) / np.sum(w * w * s * s)), 0.0
    a = np.stack([s * w, w], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(a, m * w, rcond=None)
    return float(scale), float(offset)


def fit_overhead(points: Sequence[CalibrationPoint],
                 max_ci_pct: float | None = None) -> Overhead:
    """Choose among OVERHEAD_MODELS by leave-one-out relative error and fit it on all points
    (those whose CI half-width is at most `max_ci_pct` % of the measurement, if given)."""
    n_all = len(points)
    if max_ci_pct is not None:
        points = [p for p in points
                  if 100 * (p.ci_high_ms - p.ci_low_ms) / 2 / p.measured_ms <= max_ci_pct]
    excluded = n_all - len(points)
    sums = [p.sum_ms for p in points]
    meas = [p.measured_ms for p in points]
    rms: dict[str, float] = {}
    worst: dict[str, float] = {}
    loo_points = {"sum": 1, "offset": 2, "scale": 2, "affine": 3}  # to leave one out and fit
    for model in OVERHEAD_MODELS:
        if len(points) < loo_points[model]:
            continue
        errs = []
        for i in range(len(points)):
            if model == "sum":
                scale, offset = 1.0, 0.0
            else:
                scale, offset = _fit(model, sums[:i] + sums[i + 1:], meas[:i] + meas[i + 1:])
            errs.append(100 * (scale * sums[i] + offset - meas[i]) / meas[i])
        rms[model] = math.sqrt(sum(e * e for e in errs) / len(errs))
        worst[model] = max(abs(e) for e in errs)
    if not rms:
        return Overhead(n_excluded=excluded)
    best = min(rms, key=lambda k: (rms[k], OVERHEAD_MODELS.index(k)))
    scale, offset = _fit(best, sums, meas)
    return Overhead(best, scale, offset, rms, worst, len(points), excluded)


@dataclass(frozen=True)
class Prediction:
    network: str
    fingerprint: str
    resolution: int
    latency_ms: float
    sum_ms: float
    n_blocks: int
    blocks_ci_halfwidth_ms: float   # the blocks' median CI half-widths added in quadrature
    expected_error_pct: float | None
    overhead_model: str
    statistic: str = "median"


@dataclass
class Lut:
    context: DeviceInfo
    network: NetworkSpec
    resolutions: list[int]
    max_width_steps: int | list[int]   # one limit for every stage, or one per stage
    max_depth_steps: int | list[int]
    blocks: dict[tuple[str, int], BlockRow]
    calibration: list[CalibrationPoint] = field(default_factory=list)
    overhead: Overhead = field(default_factory=Overhead)
    protocol: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    source: str = ""   # the file it was loaded from
    statistic: str = "median"   # see STATISTICS
    calibrated_on: str = ""     # "" (its own whole networks) or the table it was calibrated on
    latency_scale: dict[str, Any] = field(default_factory=dict)   # lut_record: references, factors

    # -- prediction ------------------------------------------------------------------------
    def block_sum(self, spec: NetworkSpec, resolution: int) -> tuple[float, float, int]:
        """(sum of block medians, quadrature CI half-width, number of blocks), or LutError."""
        total = var = 0.0
        parts = network_blocks(spec, int(resolution))
        for site in parts:
            block, size = site.block, site.size
            row = self.blocks.get((block.fingerprint, size))
            if row is None:
                raise LutError(self._missing(spec, int(resolution), site.where, block, size))
            value = row.value(self.statistic)
            if math.isnan(value):
                raise LutError(f"LUT has no {self.statistic} for block "
                               f"{describe_point(block, size)}")
            total += value
            var += ((row.ci_high_ms - row.ci_low_ms) / 2) ** 2
        return total, math.sqrt(var), len(parts)

    def predict(self, spec: NetworkSpec, resolution: int) -> Prediction:
        total, half, n = self.block_sum(spec, resolution)
        o = self.overhead
        return Prediction(spec.name, spec.fingerprint, int(resolution),
                          o.scale * total + o.offset_ms, total, n, half,
                          o.expected_error_pct, o.model, self.statistic)

    def predict_ms(self, spec: NetworkSpec, resolution: int) -> float:
        return self.predict(spec, resolution).latency_ms

    def _missing(self, spec: NetworkSpec, resolution: int, where: str, block: BlockModel,
                 size: int) -> str:
        what = f"{where} of {spec.name} ({spec.fingerprint}) at resolution {resolution}"
        if resolution not in self.resolutions:
            hint = (f"the LUT covers resolutions {', '.join(map(str, self.resolutions))}")
        else:
            hint = (f"the LUT covers {self.network.name} scaled by up to {self.max_width_steps} "
                    f"width and {self.max_depth_steps} depth steps per stage")
        where_from = f" ({self.source})" if self.source else ""
        return f"LUT{where_from} has no block {describe_point(block, size)}, needed for {what}; {hint}"


# -- calibration ---------------------------------------------------------------------------
def calibrate_from_table(lut: Lut, table) -> Lut:
    """Fit `lut`'s overhead on the whole-network medians of a latency table of the same device
    context, instead of the few networks measured with the blocks.

    Why: on a loaded machine (load 10 on 2 cores) whole networks run 2.5x slower than quiet
    even at their 5th percentile, while blocks, short enough to slip between preemptions, keep
    near their quiet times; a LUT calibrated on such networks predicts the loaded machine. A
    table measured when the machine was quieter (and the networks it covers) calibrates the
    block sums to that: on the committed cpu table, 325 networks, leave-one-out RMS 2.9%."""
    table = table.require_context(lut.context)
    points = []
    for r in table.rows:
        try:
            total = lut.block_sum(r.spec, r.resolution)[0]
        except LutError:          # outside the LUT's space: not a calibration point
            continue
        points.append(CalibrationPoint(r.network, r.spec.fingerprint, r.resolution,
                                       r.latency_ms, r.ci_low_ms, r.ci_high_ms, r.n_samples,
                                       total))
    if len(points) < 3:
        raise LutError(f"{table.source} has {len(points)} networks the LUT covers; need 3")
    overhead = fit_overhead(points, MAX_CALIBRATION_CI_PCT)
    return replace(lut, calibration=points, overhead=overhead,
                   calibrated_on=f"medians of {overhead.n_points} whole networks in "
                                 f"{Path(table.source).name}")
