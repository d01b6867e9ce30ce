"""Scaling steps for RBIS and the baseline scaling families, as pure spec -> spec functions.

RBIS steps (the RBIS thesis, step 2; the rounding reproduces its Table 5.1 exactly):

- width step on stage i with baseline width w0 after k width steps on that stage:
  width = round4(w0 * (1 + 0.1 * (k + 1))) (`latency_lab.network.scaling.widen`); the step count is
  kept per stage, so 80 -> 88 -> 96 -> 104 and 320 -> 352 -> 384 (the thesis's Table 5.1);
- depth step: one more block, a copy of the stage's last block with stride 1
  (`latency_lab.network.scaling.add_block`).

Baseline families, each a one-parameter family `network(base, x)` with x >= 0 (x = 0 is the
baseline); x is log2 of the FLOPs multiplier they aim at (for compound x is phi):

- compound (dwr, EfficientNet; Tan & Le 2019): depth 1.2^phi, width 1.1^phi, resolution
  1.15^phi; EfficientNet's rounding (channels: nearest multiple of 8, never 10% below;
  blocks: ceil). Resolution: nearest multiple of 4 (EfficientNet's published resolutions
  224, 240, 260, 300, 380, 456, 528, 600 are multiples of 4, not all of 8).
- fast (dWr, Dollar et al. 2021): pycls's `scaling_factors("d1_w8_g8_r1", s)` (read from
  facebookresearch/pycls, pycls/models/scaler.py) gives depth s^0.1, width s^0.4, resolution
  s^0.05 for a FLOPs multiplier s = 2^x; pycls's rounding (channels max(1, round(w/8))*8 for
  stages, stem and head; blocks max(1, round(d)); resolution round(r/4)*4; Python's round).
  pycls's `adjust_block_compatibility` is a no-op here (no groups, integer expansions).
- rs (ResNet-RS, Bello et al. 2021): OUR ENCODING of its rules "scale depth, keep width, grow
  resolution slowly": width fixed, depth s^0.8 and resolution s^0.1 (pycls's
  `scaling_factors("d4_r1", s)`: resolution grows half as fast per FLOPs doubling as compound
  scaling's 1.15 ~ 2^0.2), with pycls's rounding. The paper gives rules, not a formula.

`scale_to_budget` finds the largest member of a family within a latency budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace, field
from typing import Callable

from latency_lab.errors import UserError
from latency_lab.network.scaling import (add_block, round_filters_efficientnet, round_filters_pycls,
                                 round_repeats_efficientnet, round_repeats_pycls,
                                 round_resolution, scale_uniform, widen)
from latency_lab.network.spec import NetworkSpec, SpecError, check_resolution

WIDTH, DEPTH = "width", "depth"


# -- RBIS steps -------------------------------------------------------------------------------
def rbis_step(spec: NetworkSpec, base: NetworkSpec, width_steps: tuple[int, ...],
              dimension: str, stages: tuple[int, ...]) -> tuple[NetworkSpec, tuple[int, ...]]:
    """Apply one step per entry of `stages` (a stage may appear twice) along `dimension`.

    `width_steps[i]` counts the width steps stage i has had; widths are computed from the
    *baseline* width `base.stages[i].width`, so repeated steps do not compound rounding.
    Returns the new spec and the new width-step counts.
    """
    counts = list(width_steps)
    for i in stages:
        if dimension == WIDTH:
            spec = spec.with_stage(i, widen(spec.stages[i], base.stages[i].width, counts[i]))
            counts[i] += 1
        elif dimension == DEPTH:
            spec = spec.with_stage(i, add_block(spec.stages[i]))
        else:
            raise ValueError(f"unknown dimension {dimension!r}")
    return spec, tuple(counts)


# -- baseline families ------------------------------------------------------------------------
def pycls_scaling_factors(weights: dict[str, float], scale_factor: float) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers with d * w^2 * r^2 == scale_factor.

    The formula of pycls's `scaling_factors` (pycls/models/scaler.py) for weights on d, w, r
    (groups left out: EfficientNet's depthwise convs have none to scale).
    """
    total = weights.get("d", 0.0) + weights.get("w", 0.0) + weights.get("r", 0.0) or 1.0
    d = scale_factor ** (weights.get("d", 0.0) / total)
    w = scale_factor ** (weights.get("w", 0.0) / total / 2.0)
    r = scale_factor ** (weights.get("r", 0.0) / total / 2.0)
    return d, w, r


@dataclass(frozen=True)
class Family:
    """A one-parameter scaling family; `factors(x)` -> (depth, width, resolution) multipliers."""

    method: str                  # compound | fast | rs
    label: str                   # dwr | dWr | rs (the thesis's names)
    factors: Callable[[float], tuple[float, float, float]]
    round_filters: Callable[[float], int]
    round_repeats: Callable[[int, float], int]
    resolution_multiple: int
    parameter: str               # what x means, for reports

    def network(self, base: NetworkSpec, x: float) -> NetworkSpec:
        d, w, r = self.factors(x)
        res = check_resolution(round_resolution(base.resolution * r, self.resolution_multiple))
        spec = scale_uniform(base, w, d, res, round_filters=self.round_filters,
                             round_repeats=self.round_repeats,
                             name=f"{base.name}-{self.method}-{x:.2f}")
        return replace(spec, source=f"{self.method} scaling ({self.label}) of {base.name} "
                                    f"({base.fingerprint}): {self.parameter}={x:.2f}, depth "
                                    f"x{d:.3f}, width x{w:.3f}, resolution x{r:.3f}")


def _compound(phi: float) -> tuple[float, float, float]:
    # EfficientNet (Tan & Le 2019, Section 3.3): alpha 1.2, beta 1.1, gamma 1.15.
    return 1.2 ** phi, 1.1 ** phi, 1.15 ** phi


def _fast(x: float) -> tuple[float, float, float]:
    # pycls "d1_w8_g8_r1" (fast compound scaling, alpha = 0.8): d s^0.1, w s^0.4, r s^0.05.
    return pycls_scaling_factors({"d": 1, "w": 8, "r": 1}, 2.0 ** x)


def _rs(x: float) -> tuple[float, float, float]:
    # Our ResNet-RS encoding, pycls "d4_r1": d s^0.8, w 1, r s^0.1.
    return pycls_scaling_factors({"d": 4, "r": 1}, 2.0 ** x)


FAMILIES: dict[str, Family] = {
    "compound": Family("compound", "dwr", _compound, round_filters_efficientnet,
                       round_repeats_efficientnet, 4, "phi"),
    "fast": Family("fast", "dWr", _fast, round_filters_pycls, round_repeats_pycls, 4,
                   "log2 s"),
    "rs": Family("rs", "rs", _rs, round_filters_pycls, round_repeats_pycls, 4, "log2 s"),
}


@dataclass
class FamilyResult:
    method: str
    label: str
    x: float
    factors: tuple[float, float, float]
    spec: NetworkSpec
    latency_ms: float
    probes: list[dict] = field(default_factory=list)   # every network whose latency was read
    note: str = ""

    @property
    def resolution(self) -> int:
        return self.spec.resolution

    def to_dict(self) -> dict:
        d, w, r = self.factors
        return {"method": self.method, "label": self.label, "x": self.x,
                "depth_mult": d, "width_mult": w, "resolution_mult": r,
                "resolution": self.resolution, "latency_ms": self.latency_ms,
                "fingerprint": self.spec.fingerprint, "network": self.spec.to_dict(),
                "probes": self.probes, "note": self.note}


class BudgetError(UserError):
    """The budget is below the baseline's latency."""


def family_grid(family: Family, base: NetworkSpec, x_max: float = 8.0,
                step: float = 0.01) -> list[tuple[float, NetworkSpec]]:
    """Distinct networks of the family for x = 0, step, ..., x_max (first x of each), up to
    the first that cannot be built at all (over spec.py's parameter or depth bounds): every
    multiplier grows with x, so no later one can be built either."""
    out: list[tuple[float, NetworkSpec]] = []
    seen: set[tuple[str, int]] = set()
    for n in range(int(round(x_max / step)) + 1):
        x = round(n * step, 10)
        try:
            spec = family.network(base, x)
        except SpecError:
            if not out:
                raise
            break
        key = (spec.fingerprint, spec.resolution)
        if key not in seen:
            seen.add(key)
            out.append((x, spec))
    return out


def scale_to_budget(family: Family, base: NetworkSpec, budget_ms: float,
                    latency: Callable[[NetworkSpec, int], float], x_max: float = 8.0,
                    step: float = 0.01) -> FamilyResult:
    """The largest distinct member of `family` (x on a `step` grid) with latency <= budget.

    Latency grows with x along a family (every multiplier is non-decreasing), so the search
    probes indices 1, 2, 4, 8, ... of the distinct networks until one exceeds the budget and
    then bisects: about 2 log2(n) latency reads instead of n. A family whose members are not
    monotone in latency (jumps) can make bisection land on a local boundary; every probe is
    recorded so this can be checked.
    """
    grid = family_grid(family, base, x_max, step)
    probes: list[dict] = []
    seen: dict[int, float] = {}

    def lat(i: int) -> float:
        if i not in seen:
            x, spec = grid[i]
            seen[i] = latency(spec, spec.resolution)
            probes.append({"x": x, "resolution": spec.resolution,
                           "fingerprint": spec.fingerprint, "latency_ms": seen[i]})
        return seen[i]

    lat0 = lat(0)
    if lat0 > budget_ms:
        raise BudgetError(f"budget {budget_ms:g} ms is below the baseline's latency "
                          f"{lat0:.3f} ms at {grid[0][1].resolution}")
    lo, hi, probe = 0, None, 1
    while probe < len(grid):
        if lat(probe) > budget_ms:
            hi = probe
            break
        lo, probe = probe, probe * 2
    note = ""
    if hi is None:
        if lo != len(grid) - 1:
            if lat(len(grid) - 1) <= budget_ms:
                lo = len(grid) - 1
            else:
                hi = len(grid) - 1
        if hi is None:
            note = f"budget reaches the end of the searched range ({family.parameter} <= {x_max})"
            try:
                family.network(base, x_max)
            except SpecError as exc:
                note = (f"budget reaches the largest network of the family that can be built "
                        f"({family.parameter} = {grid[-1][0]:g}; beyond: {exc})")
    if hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if lat(mid) <= budget_ms:
                lo = mid
            else:
                hi = mid
    x, spec = grid[lo]
    return FamilyResult(family.method, family.label, x, family.factors(x), spec, seen[lo], probes,
                        note)


def get_family(method: str) -> Family:
    try:
        return FAMILIES[method]
    except KeyError:
        raise UserError(f"unknown scaling method {method!r}; known: {', '.join(FAMILIES)}") from None


__all__ = ["WIDTH", "DEPTH", "rbis_step", "pycls_scaling_factors", "Family", "FAMILIES",
           "FamilyResult", "BudgetError", "family_grid", "scale_to_budget", "get_family"]
