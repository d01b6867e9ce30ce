"""The per-block lookup table (LUT): predict a network's latency from its blocks' latencies.

In the spirit of the lookup tables of ProxylessNAS and Once-for-All (one per resolution):
`record_lut` measures, on a device, every distinct block that RBIS-scaled versions of a network
can contain (`blocks.scaled_space_blocks`), each as a one-block model at its input size, through
the ordinary protocol (interleaved rounds, CI stopping rule, every sample committed to the
store as taken, so an interrupted recording resumes). It also measures a few whole networks
(the base network at every resolution plus some random scaled ones) to calibrate the predictor.

`Lut.predict(spec, resolution)` sums the network's block latencies (the median, or the 5th
percentile on a shared machine: see STATISTICS) and applies the
calibration that predicted the calibration networks best in leave-one-out: the plain sum, a
fixed per-network offset (the sum counts one interpreter call per block, the network makes
one), a scale, or both. The leave-one-out error is the predictor's expected error.

A LUT file is JSON (never pickle): device context, base network, block rows with their
statistics, calibration points and the fitted overhead. `load_lut` validates it (format,
fields, block fingerprints against block descriptions, duplicates) and refuses a file that
was edited by hand or recorded on another device context when one is required.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from latency_lab.network.blocks import BlockModel, describe_point, network_blocks
from latency_lab.network.scaling import per_stage, scaled_space_blocks
from latency_lab.errors import UserError
from latency_lab.fileio import parse_json, read_text, write_atomic
from latency_lab.measure.api import Device, DeviceInfo
from latency_lab.network.scaling import set_depth, widen
from latency_lab.network.spec import NetworkSpec, SpecError, check_resolution, int_field

LUT_FORMAT = "latency-lab-lut"
LUT_FORMAT_VERSION = 1
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
_BLOCK_FIELDS = ("fingerprint", "block", "input_size", "latency_ms", "ci_low_ms", "ci_high_ms",
                 "n_samples")


class LutError(UserError):
    """A LUT file that cannot be used, or a network it does not cover; message for the user."""


# -- scaled networks -----------------------------------------------------------------------
def scaled_variant(spec: NetworkSpec, width_steps: Sequence[int], depth_steps: Sequence[int],
                   name: str | None = None) -> NetworkSpec:
    """`spec` with stage i widened by width_steps[i] RBIS width steps and deepened by
    depth_steps[i] blocks (scaling.widen / set_depth), as the RBIS search produces them."""
    if len(width_steps) != len(spec.stages) or len(depth_steps) != len(spec.stages):
        raise SpecError(f"need one width and one depth step count per stage ({len(spec.stages)})")
    stages = []
    for stage, kw, kd in zip(spec.stages, width_steps, depth_steps):
        s = widen(stage, stage.width, kw - 1) if kw > 0 else stage
        stages.append(set_depth(s, stage.depth + kd))
    tag = "w" + "".join(map(str, width_steps)) + "-d" + "".join(map(str, depth_steps))
    return replace(spec, name=name or f"{spec.name}-{tag}", stages=tuple(stages))


def random_scaled(spec: NetworkSpec, max_width_steps, max_depth_steps,
                  rng: random.Random) -> NetworkSpec:
    """A random point of the scaled space that `scaled_space_blocks` covers (limits: one
    number for every stage, or one per stage)."""
    n = len(spec.stages)
    w = per_stage(max_width_steps, n, "max width steps")
    d = per_stage(max_depth_steps, n, "max depth steps")
    return scaled_variant(spec, [rng.randint(0, k) for k in w], [rng.randint(0, k) for k in d])


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

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.block.fingerprint, "block": self.block.to_dict(),
                "name": self.block.name, "input_size": self.input_size,
                "latency_ms": self.latency_ms, "ci_low_ms": self.ci_low_ms,
                "ci_high_ms": self.ci_high_ms, "n_samples": self.n_samples,
                "p5_ms": None if math.isnan(self.p5_ms) else self.p5_ms,
                "std_ms": None if math.isnan(self.std_ms) else self.std_ms,
                "stop_reason": self.stop_reason}


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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "scale": self.scale, "offset_ms": self.offset_ms,
                "loo_rms_pct": self.loo_rms_pct, "loo_max_pct": self.loo_max_pct,
                "n_points": self.n_points, "n_excluded": self.n_excluded}


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

    # -- file ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        rows = sorted(self.blocks.values(), key=lambda r: (r.block.kind != "stem",
                                                           r.block.kind == "head", -r.input_size,
                                                           r.block.c_in, r.block.c_out,
                                                           r.block.fingerprint))
        return {
            "format": LUT_FORMAT,
            "format_version": LUT_FORMAT_VERSION,
            "created_at": self.created_at,
            "statistic": self.statistic,
            "calibrated_on": self.calibrated_on,
            "context_key": self.context.context_key,
            "context": self.context.to_dict(),
            "network": {"name": self.network.name, "fingerprint": self.network.fingerprint,
                        "spec": self.network.to_dict()},
            "resolutions": list(self.resolutions),
            "max_width_steps": self.max_width_steps,
            "max_depth_steps": self.max_depth_steps,
            "protocol": self.protocol,
            "overhead": self.overhead.to_dict(),
            "calibration": [p.to_dict() for p in self.calibration],
            "blocks": [r.to_dict() for r in rows],
        }

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# -- loading -------------------------------------------------------------------------------
def _num(value: Any, what: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LutError(f"{what} is {value!r}, not a finite number")
    if positive and value <= 0:
        raise LutError(f"{what} is {value!r}, must be positive")
    return float(value)


def _limit(value: Any, network: NetworkSpec, what: str) -> int | list[int]:
    """A step limit as saved: one int, or a list with one int per stage."""
    if isinstance(value, list):
        try:
            return per_stage(value, len(network.stages), what)
        except (SpecError, TypeError, ValueError) as exc:
            raise LutError(f"{what} {value!r}: {exc}") from None
    return int_field(value, what)


def lut_from_dict(d: Any, source: str = "") -> Lut:
    """Validate and build a `Lut` from parsed JSON; LutError naming the first problem."""
    where = f"LUT {source}: " if source else "LUT: "
    try:
        if not isinstance(d, dict) or d.get("format") != LUT_FORMAT:
            raise LutError(f"not a latency-lab LUT (no \"format\": \"{LUT_FORMAT}\")")
        if d.get("format_version") != LUT_FORMAT_VERSION:
            raise LutError(f"format version {d.get('format_version')!r}, this tool reads "
                           f"{LUT_FORMAT_VERSION}")
        missing = [k for k in ("context", "context_key", "network", "resolutions",
                               "max_width_steps", "max_depth_steps", "blocks", "overhead")
                   if k not in d]
        if missing:
            raise LutError(f"lacks key(s) {', '.join(missing)} (truncated or hand-edited?)")
        context = DeviceInfo.from_dict(d["context"])
        if context.context_key != d["context_key"]:
            raise LutError(f"context_key {d['context_key']} does not match its context fields "
                           f"(they hash to {context.context_key}; hand-edited?)")
        network = NetworkSpec.from_dict(d["network"]["spec"])
        if network.fingerprint != d["network"].get("fingerprint"):
            raise LutError(f"base network JSON has fingerprint {network.fingerprint}, the file "
                           f"says {d['network'].get('fingerprint')} (hand-edited?)")
        blocks: dict[tuple[str, int], BlockRow] = {}
        for i, r in enumerate(d["blocks"]):
            lacking = [k for k in _BLOCK_FIELDS if k not in r or r[k] is None]
            if lacking:
                raise LutError(f"block row {i} lacks {', '.join(lacking)}")
            block = BlockModel.from_dict(r["block"])
            if block.fingerprint != r["fingerprint"]:
                raise LutError(f"block row {i}: description hashes to {block.fingerprint}, the "
                               f"row says {r['fingerprint']} (hand-edited?)")
            size = int_field(r["input_size"], f"block row {i} input_size")
            if size < 1:
                raise LutError(f"block row {i} input_size is {size}, must be positive")
            key = (block.fingerprint, size)
            if key in blocks:
                raise LutError(f"block row {i} repeats {describe_point(block, size)}")
            lat = _num(r["latency_ms"], f"block row {i} latency_ms", positive=True)
            lo = _num(r["ci_low_ms"], f"block row {i} ci_low_ms")
            hi = _num(r["ci_high_ms"], f"block row {i} ci_high_ms")
            if not lo <= lat <= hi:
                raise LutError(f"block row {i}: latency {lat} outside its CI [{lo}, {hi}]")
            std, p5 = r.get("std_ms"), r.get("p5_ms")
            blocks[key] = BlockRow(block, size, lat, lo, hi,
                                   int_field(r["n_samples"], f"block row {i} n_samples"),
                                   float("nan") if std is None else _num(std, f"block row {i} std_ms"),
                                   str(r.get("stop_reason", "")),
                                   float("nan") if p5 is None else _num(p5, f"block row {i} p5_ms",
                                                                        positive=True))
        o = d["overhead"]
        if o.get("model") not in OVERHEAD_MODELS:
            raise LutError(f"unknown overhead model {o.get('model')!r}")
        overhead = Overhead(o["model"], _num(o["scale"], "overhead scale", positive=True),
                            _num(o["offset_ms"], "overhead offset_ms"),
                            {k: float(v) for k, v in o.get("loo_rms_pct", {}).items()},
                            {k: float(v) for k, v in o.get("loo_max_pct", {}).items()},
                            int_field(o.get("n_points", 0), "overhead n_points"),
                            int_field(o.get("n_excluded", 0), "overhead n_excluded"))
        calibration = [CalibrationPoint(**p) for p in d.get("calibration", [])]
        statistic = d.get("statistic", "median")
        if statistic not in STATISTICS:
            raise LutError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")
        return Lut(context, network,
                   [check_resolution(int_field(r, "resolution")) for r in d["resolutions"]],
                   _limit(d["max_width_steps"], network, "max_width_steps"),
                   _limit(d["max_depth_steps"], network, "max_depth_steps"), blocks, calibration,
                   overhead, dict(d.get("protocol", {})), str(d.get("created_at", "")), source,
                   statistic, str(d.get("calibrated_on", "")))
    except LutError as exc:
        raise LutError(where + str(exc)) from None
    except SpecError as exc:
        raise LutError(f"{where}{exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LutError(f"{where}malformed ({type(exc).__name__}: {exc}; truncated or "
                       f"hand-edited?)") from None


def load_lut(path: str | Path, context: DeviceInfo | str | None = None) -> Lut:
    """Read and validate a LUT file; with `context` (a DeviceInfo or context key), refuse a
    LUT recorded in another device context."""
    path = Path(path)
    d = parse_json(read_text(path, "LUT", LutError), f"LUT {path}", LutError)
    lut = lut_from_dict(d, str(path))
    if context is not None:
        want = context.context_key if isinstance(context, DeviceInfo) else str(context)
        if lut.context.context_key != want:
            c = lut.context
            raise LutError(f"LUT {path} was recorded in device context {c.context_key} "
                           f"({c.name}, {c.hardware}, {c.runtime} {c.runtime_version}, "
                           f"{c.threads} thread(s)), not {want}")
    return lut


# -- recording -----------------------------------------------------------------------------
Progress = Callable[[str, Any], None]   # (phase, protocol.RunStatus)


def calibration_networks(spec: NetworkSpec, resolutions: Sequence[int], max_width_steps,
                         max_depth_steps, n_random: int, seed: int = 0
                         ) -> list[tuple[NetworkSpec, int]]:
    """The base network at every resolution, then `n_random` random scaled ones."""
    rng = random.Random(seed)
    points = [(spec, int(r)) for r in sorted(resolutions)]
    for _ in range(n_random):
        points.append((random_scaled(spec, max_width_steps, max_depth_steps, rng),
                       rng.choice(sorted(resolutions))))
    return points


def record_lut(device: Device, spec: NetworkSpec, resolutions: Sequence[int],
               max_width_steps, max_depth_steps, store, protocol,
               n_calibration: int = 2, seed: int = 0, progress: Progress | None = None,
               statistic: str = "median") -> Lut:
    """Measure every block of the scaled space and a few whole networks; return the LUT.

    Resumable: blocks and networks already measured in `store` on this device context are
    reused (the store keys block points by block fingerprint and input size).
    """
    from latency_lab.measure.protocol import measure_points

    if statistic not in STATISTICS:
        raise LutError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")
    info = device.info()
    points = scaled_space_blocks(spec, resolutions, max_width_steps, max_depth_steps)

    def phase(name: str):
        return (lambda status: progress(name, status)) if progress else None

    calib = calibration_networks(spec, resolutions, max_width_steps, max_depth_steps,
                                 n_calibration, seed)
    # One interleaved run for blocks and calibration networks: the machine's drift and load
    # hit both alike, so the fitted overhead is not the difference of two different moments.
    measured = measure_points(device, list(points) + calib, store, protocol,
                              progress=phase("blocks+calibration"))
    missing = [m for m in measured if not m.measured]
    if missing:
        raise LutError(f"the time cap ({protocol.time_cap_s:g} s) came before {len(missing)} of "
                       f"{len(measured)} block and calibration points were measured; what was "
                       f"measured is in the store: run again to go on")
    whole = measured[len(points):]
    rows: dict[tuple[str, int], BlockRow] = {}
    for (block, size), m in zip(points, measured):
        s = m.stats
        rows[(block.fingerprint, size)] = BlockRow(block, size, s.median_ms, s.ci_low_ms,
                                                   s.ci_high_ms, s.count, s.std_ms,
                                                   m.stop_reason, s.p5_ms)
    lut = Lut(info, spec, sorted(int(r) for r in resolutions), max_width_steps,
              max_depth_steps, rows, protocol=protocol.to_dict(),
              created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
              statistic=statistic)
    lut.calibration = [calibration_point(lut, net, r, m) for (net, r), m in zip(calib, whole)]
    lut.overhead = fit_overhead(lut.calibration,
                                MAX_CALIBRATION_CI_PCT if statistic == "median" else None)
    return lut


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


def calibration_point(lut: Lut, spec: NetworkSpec, resolution: int, m) -> CalibrationPoint:
    s = m.stats
    return CalibrationPoint(spec.name, spec.fingerprint, int(resolution),
                            s.median_ms if lut.statistic == "median" else s.p5_ms,
                            s.ci_low_ms, s.ci_high_ms, s.count,
                            lut.block_sum(spec, resolution)[0])
