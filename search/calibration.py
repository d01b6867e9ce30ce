"""A recorded table and a LUT on one scale, and predictions kept monotone in network size.

Why: a search that reads a table and falls back to a LUT for what the table lacks compares a
candidate predicted by the LUT with its parent recorded in the table. Both are in ms, but not
on one scale: the README's LUT (`results/cpu/lut-efficientnet-b0-to-b2.json`) was recorded at a
load of 10 and fitted to the table with one offset for all resolutions, so at 240 px a width
step predicted 14.44 ms for a network that contains its 14.55 ms parent.

1. **Calibration** (`calibrate_lut_to_table`): on the points both have (every table row the LUT
   can predict), the ratio table / LUT. One factor per resolution (the geometric mean of the
   ratios there, where there are at least `MIN_SHARED` points), else one over all shared
   points; its error is the RMS of the calibrated LUT's relative residuals on those points (what
   a single prediction is off by), said with the number of points. The search's output says it.
2. **Monotonicity** (`Monotone`): a predicted latency is never below that of a network it
   strictly contains (`network.scaling.contains`) that this search has read at the same
   resolution, nor above one that strictly contains it. Where the calibrated prediction would
   cross such a neighbour N, it becomes N's latency plus the LUT's own increment between the
   two (zero where the LUT predicts none or cannot predict N): the LUT's difference, anchored on
   the recorded value, which is how the two are calibrated on the finest scale there is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from latency_lab.network.memo import IdentityMemo
from latency_lab.network.scaling import contains
from latency_lab.network.spec import NetworkSpec

MIN_SHARED = 3     # points at one resolution for a factor of its own


@dataclass(frozen=True)
class Factor:
    factor: float
    rms_pct: float      # RMS relative residual of the calibrated LUT on the shared points, %
    n: int
    where: str          # "at 240 px" or "over all resolutions"


@dataclass
class LutCalibration:
    """LUT -> table factors per resolution (or one overall), with their errors."""

    table: str
    lut: str
    per_resolution: dict[int, Factor] = field(default_factory=dict)
    overall: Factor | None = None
    same_context: bool = True

    def factor(self, resolution: int) -> Factor | None:
        return self.per_resolution.get(int(resolution), self.overall)

    def describe(self) -> str:
        if self.overall is None:
            return (f"LUT {self.lut} not calibrated to table {self.table}: they share no "
                    f"network; its predictions are on its own scale")
        per = ", ".join(f"{r} px x{f.factor:.3f} (+-{f.rms_pct:.1f}%, {f.n})"
                        for r, f in sorted(self.per_resolution.items()))
        o = self.overall
        return (f"LUT {self.lut} calibrated to table {self.table} on the {o.n} networks both "
                f"have: " + (f"{per}; " if per else "") + f"elsewhere x{o.factor:.3f} "
                f"(+-{o.rms_pct:.1f}% RMS)"
                + ("" if self.same_context else "; NOTE: the two were recorded in different "
                                                "device contexts"))


def _fit(pairs: list[tuple[float, float]], where: str) -> Factor:
    logs = [math.log(t / p) for t, p in pairs]
    mean = sum(logs) / len(logs)
    f = math.exp(mean)
    rms = math.sqrt(sum((f * p / t - 1) ** 2 for t, p in pairs) / len(pairs))
    return Factor(f, 100 * rms, len(pairs), where)


def calibrate_lut_to_table(lut, table, lut_name: str = "", table_name: str = "") -> LutCalibration:
    """`lut` (tables.lut.Lut) calibrated to `table` (tables.latency_table.LatencyTable) on the
    networks both have."""
    from latency_lab.tables.lut import LutError

    by_res: dict[int, list[tuple[float, float]]] = {}
    for row in table.rows:
        try:
            pred = lut.predict_ms(row.spec, row.resolution)
        except LutError:
            continue
        if pred > 0 and row.latency_ms > 0:
            by_res.setdefault(int(row.resolution), []).append((row.latency_ms, pred))
    cal = LutCalibration(table_name or str(table.source), lut_name or str(lut.source),
                         same_context=table.context.context_key == lut.context.context_key)
    every = [p for pairs in by_res.values() for p in pairs]
    if not every:
        return cal
    cal.overall = _fit(every, "over all resolutions")
    for r, pairs in by_res.items():
        if len(pairs) >= MIN_SHARED:
            cal.per_resolution[r] = _fit(pairs, f"at {r} px")
    return cal


@dataclass
class Known:
    spec: NetworkSpec
    latency_ms: float


def _shape(spec: NetworkSpec) -> tuple[tuple, tuple[int, ...]]:
    """What `contains` compares, split into what must be equal (the family) and the sizes that
    must all be at least as large; memoised per spec object."""
    def make():
        fam = (len(spec.stages), spec.num_classes, spec.activation, spec.stem.kernel,
               spec.stem.stride, tuple((st.kind, st.se_ratio) for st in spec.stages))
        sizes = (spec.stem.width, spec.head_width, *(st.width for st in spec.stages),
                 *(st.depth for st in spec.stages))
        return fam, sizes

    return _SHAPES.cached(spec, None, make)


_SHAPES = IdentityMemo()


class _Family:
    """The known networks of one family at one resolution, their sizes as one array."""

    def __init__(self) -> None:
        self.known: list[Known] = []
        self.rows: list[tuple[int, ...]] = []
        self._array = None

    def add(self, k: Known, sizes: tuple[int, ...]) -> None:
        self.known.append(k)
        self.rows.append(sizes)
        self._array = None

    def array(self):
        import numpy as np

        if self._array is None:
            self._array = np.array(self.rows, dtype=np.int64)
        return self._array


class Monotone:
    """What a search has read, per resolution, to keep predictions monotone in size.

    `bound` used to test `contains` against every network read at the resolution (71,340 calls,
    0.6 s of the README's offline search); it now compares the sizes of the networks of the
    same family as one array and tests `contains` (which also checks the blocks) only on the
    nearest in latency of those the sizes allow, until one holds: the same answer."""

    def __init__(self):
        self.known: dict[int, dict[str, Known]] = {}
        self._families: dict[int, dict[tuple, _Family]] = {}

    def add(self, spec: NetworkSpec, resolution: int, latency_ms: float) -> None:
        here = self.known.setdefault(int(resolution), {})
        k = Known(spec, latency_ms)
        fresh = spec.fingerprint not in here
        here[spec.fingerprint] = k
        fam, sizes = _shape(spec)
        family = self._families.setdefault(int(resolution), {}).setdefault(fam, _Family())
        if fresh:
            family.add(k, sizes)
        else:   # the same network read again: its latest value, as the dict keeps it
            i = next(j for j, o in enumerate(family.known) if o.spec.fingerprint == spec.fingerprint)
            family.known[i] = k

    def _nearest(self, spec: NetworkSpec, resolution: int, below: bool) -> Known | None:
        """The highest-latency network `spec` contains (`below`), or the lowest-latency one
        that contains it; the first read among equals, as max/min over the reads give."""
        import numpy as np

        fam, sizes = _shape(spec)
        family = self._families.get(int(resolution), {}).get(fam)
        if family is None:
            return None
        arr = family.array()
        v = np.asarray(sizes, dtype=np.int64)
        ok = (arr <= v).all(axis=1) if below else (arr >= v).all(axis=1)
        idx = np.flatnonzero(ok)
        if not len(idx):
            return None
        lat = np.array([family.known[i].latency_ms for i in idx])
        order = idx[np.argsort(-lat if below else lat, kind="stable")]
        for i in order:
            k = family.known[i]
            if contains(spec, k.spec) if below else contains(k.spec, spec):
                return k
        return None

    def bound(self, spec: NetworkSpec, resolution: int, value: float,
              increment: Callable[[NetworkSpec, NetworkSpec], float | None]
              ) -> tuple[float, str]:
        """`value` kept between what `spec` contains and what contains it; `increment(big,
        small)`: the LUT's predicted ms between the two (None: cannot say). Returns the value
        and '' or a note saying which neighbour bounded it."""
        floor = self._nearest(spec, resolution, below=True)
        ceil = self._nearest(spec, resolution, below=False)
        if floor is not None and value < floor.latency_ms:
            step = max(0.0, increment(spec, floor.spec) or 0.0)
            new = floor.latency_ms + step
            if ceil is not None and new > ceil.latency_ms:
                new = floor.latency_ms
            return new, (f"raised from {value:.3f} ms to {new:.3f} ms: it contains "
                         f"{floor.spec.name} ({floor.spec.fingerprint}, {floor.latency_ms:.3f} ms)"
                         f" + the LUT's increment {step:.3f} ms")
        if ceil is not None and value > ceil.latency_ms:
            step = max(0.0, increment(ceil.spec, spec) or 0.0)
            new = max(ceil.latency_ms - step, floor.latency_ms if floor else 0.0)
            return new, (f"lowered from {value:.3f} ms to {new:.3f} ms: {ceil.spec.name} "
                         f"({ceil.spec.fingerprint}, {ceil.latency_ms:.3f} ms) contains it, "
                         f"less the LUT's increment {step:.3f} ms")
        return value, ""


__all__ = ["LutCalibration", "Factor", "calibrate_lut_to_table", "Monotone", "MIN_SHARED"]
