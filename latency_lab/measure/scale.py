"""One latency scale across many batches: a reference measured again with every batch.

Why: `protocol.py` interleaves the points of one batch and divides out the drift they share,
but nothing ties one batch to the next. A live search measures one batch of candidates per
iteration, minutes apart; when the machine's speed moves between batches, a candidate measured
in a slow minute looks slower than its parent measured in a fast one. A live RBIS search on
this host saw 58-64 ms per GMAC in one 5-minute window and 31.7 in the next, and chose 256 px
where the recorded search chose 240 px (`results/cpu/rbis-b0-to-b1-direct/`); a phone that
heats up during a search drifts the same way, in one direction.

How: every batch also measures a *reference* point, fresh, interleaved with its points (so it
shares their rounds and their drift correction). The scale is the reference's first steady
measurement (or a recorded value of it: a latency table's row, `anchor_values`). A batch's
factor is f = reference now / reference on the scale (the trace says it per batch). Each
point is put on the scale visit by visit: every visit of the point is divided by the factor of
the reference's visit nearest in time, and the point's latency is the median of that, with its
CI (a paired design: a step in the machine's speed inside a batch cancels visit by visit; with
a ratio of medians, a point measured mostly before the step and a reference mostly after it
were off by the whole step, which a 7-point batch on a device slowing 1.8x showed). The
uncertainty is a ratio's: relative CI half-widths add in quadrature, the paired samples' own
with the reference's value on the scale.

Which reference: `reference_of(point)`, by default the base network at the point's resolution
once that has a value on the scale, else the anchor (the base network at the resolution of the
first point measured). A base-network point measured for the first time gets its value on the
scale from the batch it was measured in, so each resolution of a search has a reference of its
own size, all tied to the one anchor.

Reuse, only when it meets the request and only said out loud. A finished measurement in the
store is taken instead of measuring again only when (1) it meets this protocol (`meets`: its CI
target after its minimum rounds, or all its maximum rounds) and (2) it is *tied* to the scale:
a finished measurement of a reference with a value on the scale was taken in the same
interleaved run (their sample times overlap), so the two saw one machine. It is then put on the
scale by that reference's factor then. Anything else is measured again in this batch, and the
batch says why (fell short of the protocol; measured without a reference, so its level is
unknown). When a reused latency's factor differs from the batch's beyond their CIs, the
store's measurements were taken at another level (a loaded machine against a quiet one): that
is said with both levels and loads, and `--remeasure` offered (it measures everything again).
"""

from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from latency_lab.errors import UserError
from latency_lab.measure.api import Device, Measurement
from latency_lab.measure.protocol import meets, measure_points
from latency_lab.measure.settings import Protocol
from latency_lab.measure.stats import summarize

Key = tuple[str, int]          # (fingerprint, resolution)
Point = tuple[Any, int]        # (NetworkSpec or a LUT's BlockModel, resolution or input size)
# A stored measurement is tied to a reference measurement that covers at least this share of
# its sampling time (both were visited in the same rounds of one interleaved run).
MIN_OVERLAP = 0.5


class ScaleError(UserError):
    """A batch whose reference could not be measured (the time cap came first)."""


def key(point: Point) -> Key:
    return (point[0].fingerprint, int(point[1]))


def label(point: Point) -> str:
    return f"{point[0].name}@{int(point[1])}"


@dataclass(frozen=True)
class OnScale:
    """A value on the scale: ms and its relative 95% CI half-width."""

    ms: float
    rel: float


@dataclass(frozen=True)
class Scaled:
    """A latency put on the scale, with what it was and how it got there."""

    measurement: Measurement
    latency_ms: float
    rel: float                 # relative CI half-width, the factor's uncertainty included
    factor: float              # what the measured latency was divided by
    factor_rel: float
    batch: int
    provenance: str            # "live" (measured in this batch) or "reused" (from the store)
    note: str = ""             # a reused latency's conditions and tie

    @property
    def ci_low_ms(self) -> float:
        return self.latency_ms * (1 - self.rel)

    @property
    def ci_high_ms(self) -> float:
        return self.latency_ms * (1 + self.rel)

    def describe(self) -> str:
        m = self.measurement
        head = (f"{self.provenance}: median of {m.stats.count} samples in {m.n_rounds} rounds, "
                f"{m.latency_ms:.3f} ms as measured")
        if self.provenance == "reused":
            head += (f", / {self.factor:.3f} (+-{100 * self.factor_rel:.1f}%, the factor of the "
                     f"reference measured with it)")
        elif self.factor != 1.0 or self.batch > 0:
            head += (f", / {self.factor:.3f} (+-{100 * self.factor_rel:.1f}%, batch "
                     f"{self.batch}'s factor)")
        return (f"{head}; on the scale {self.latency_ms:.3f} ms, 95% CI {self.ci_low_ms:.3f}-"
                f"{self.ci_high_ms:.3f} ms" + (f"; {self.note}" if self.note else ""))


@dataclass(frozen=True)
class BatchFactor:
    """One batch's reference: measured now, on the scale, and the factor between."""

    batch: int
    reference: str
    reference_ms: float
    reference_rel: float
    scale_ms: float
    factor: float
    factor_rel: float
    measured: int              # points measured with it
    reused: int                # points taken from the store (each with its own tie's factor)
    load: tuple[float, float] | None
    at: float                  # unix time of the reference's last sample

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "reference": self.reference,
                "reference_ms": self.reference_ms, "reference_rel": self.reference_rel,
                "scale_ms": self.scale_ms, "factor": self.factor, "factor_rel": self.factor_rel,
                "measured": self.measured, "reused": self.reused,
                "load": list(self.load) if self.load else None, "at": self.at}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BatchFactor":
        load = d.get("load")
        return cls(**{**d, "load": tuple(load) if load else None})


def ratio_rel(*rels: float) -> float:
    """Relative CI half-width of a product or ratio of independent estimates."""
    return math.sqrt(sum(r * r for r in rels))


def _visits(m: Measurement) -> list[tuple[float, float]]:
    """(time, median of its drift-corrected samples) of every visit of `m`, by time."""
    by: dict[float, list[float]] = {}
    for sample, t in zip(m.corrected_samples(), m.times):
        by.setdefault(t, []).append(sample)
    return sorted((t, statistics.median(v)) for t, v in by.items())


def _rel(m: Measurement) -> float:
    h = m.stats.ci_halfwidth_rel
    return h if math.isfinite(h) else 0.0


@dataclass
class LatencyScale:
    """Measures batches of points on a device, each with a fresh reference, and puts every
    latency on one scale (see the module docstring). `base`: the network whose points are
    references (by default, at each resolution); `remeasure`: reuse nothing from the store;
    `say`: where the batches' notes go (one line each); `reference_of`: another choice of
    reference per point; `anchor_values`: references' values on the scale given beforehand
    (a recorded table's rows), `first_from_store`: a reference's first value is its earliest
    finished measurement in the store (a recording resumed over several sessions keeps the
    first session's scale), not the one of this batch; `measure_fn(points)`: how a batch is
    measured when not by `measure_points` here (a device in a Ray actor), with the same rule:
    finished measurements are not reused, open ones are resumed."""

    device: Device
    store: Any
    protocol: Protocol = field(default_factory=Protocol)
    base: Any = None
    remeasure: bool = False
    say: Callable[[str], None] | None = None
    progress: Callable | None = None
    reference_of: Callable[[Point], Point] | None = None
    anchor_values: dict[Key, OnScale] = field(default_factory=dict)
    first_from_store: bool = False
    measure_fn: Callable[[list[Point]], list[Measurement]] | None = None
    values: dict[Key, OnScale] = field(default_factory=dict)
    specs: dict[Key, Any] = field(default_factory=dict)      # reference points by key
    anchor: Key | None = None
    batches: list[BatchFactor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.info = self.device.info()

    # -- references ------------------------------------------------------------------------
    def _is_reference(self, point: Point) -> bool:
        if self.reference_of is not None:
            return key(self.reference_of(point)) == key(point)
        if self.base is not None:
            return point[0].fingerprint == self.base.fingerprint
        return key(point) == self.anchor

    def _reference(self, point: Point) -> Point:
        if self.reference_of is not None:
            return self.reference_of(point)
        if self.base is not None:
            here = (self.base.with_resolution(int(point[1])), int(point[1]))
            if key(here) in self.values or key(here) in self.anchor_values or self.anchor is None:
                return here
        if self.anchor is None:
            return point
        return self.specs[self.anchor], self.anchor[1]

    # -- one batch -------------------------------------------------------------------------
    def measure(self, points: Sequence[Point]) -> list[Scaled]:
        """Every point on the scale, in order: measured now with its batch's reference(s),
        or reused from the store where that meets the request and is tied (said)."""
        points = [(p, int(r)) for p, r in points]
        batch = self.batches[-1].batch + 1 if self.batches else 0
        refs: dict[Key, Point] = {}
        for p in points:
            ref = self._reference(p)
            refs.setdefault(key(ref), ref)
            self.specs.setdefault(key(ref), ref[0])
            if self.anchor is None:
                self.anchor = key(ref)
        known = set(self.values) | set(refs)
        reuse: dict[int, tuple[Measurement, Measurement, Key]] = {}
        fresh: list[int] = []
        short, untied = [], []
        for i, p in enumerate(points):
            if key(p) in refs:
                continue
            found = None if self.remeasure else self._stored(p)
            if found is None:
                fresh.append(i)
            elif not meets(found, self.protocol):
                fresh.append(i)
                short.append((p, found))
            else:
                tie = self._tie(p, found, known)
                if tie is None:
                    fresh.append(i)
                    untied.append((p, found))
                else:
                    reuse[i] = (found, *tie)
        ref_list = list(refs.values())
        todo = ref_list + [points[i] for i in fresh]
        done = (self.measure_fn(todo) if self.measure_fn is not None else
                measure_points(self.device, todo, self.store, self.protocol,
                               progress=self.progress, fresh=True))
        missing = [m for m in done if not m.measured]
        if missing:
            raise ScaleError(f"the time cap ({self.protocol.time_cap_s:g} s) came before "
                             f"{len(missing)} of {len(done)} points of batch {batch} were "
                             f"measured (the first: {missing[0].network} at "
                             f"{missing[0].resolution}); what was measured is in the store "
                             f"{getattr(self.store, 'path', '')}: run again to go on")
        factors: dict[Key, tuple[float, float]] = {}
        ref_of_batch: dict[Key, Measurement] = {}
        for ref, m in zip(ref_list, done):
            factors[key(ref)] = self._factor(ref, m, batch, len(fresh), len(reuse))
            ref_of_batch[key(ref)] = m
        out: dict[int, Scaled] = {}
        for i, m in zip(fresh, done[len(ref_list):]):
            k = key(self._reference(points[i]))
            out[i] = self._scaled(m, ref_of_batch[k], self.values[k], factors[k][1], batch,
                                  "live")
            self._learn(points[i], out[i])
        for i, p in enumerate(points):
            if key(p) in refs:     # the batch's reference itself: its value on the scale
                on, m = self.values[key(p)], ref_of_batch[key(p)]
                out[i] = Scaled(m, on.ms, on.rel, m.latency_ms / on.ms, factors[key(p)][1],
                                batch, "live")
        levels = []
        for i, (m, ref_then, ref_key) in reuse.items():
            on = self.values[ref_key]
            f, frel = ref_then.latency_ms / on.ms, ratio_rel(_rel(ref_then), on.rel)
            out[i] = self._scaled(m, ref_then, on, frel, batch, "reused",
                                  f"{m.conditions()}; tied by {ref_then.network}@"
                                  f"{ref_then.resolution} measured with it "
                                  f"({ref_then.latency_ms:.3f} ms, factor {f:.3f})")
            self._learn(points[i], out[i])
            now_f, now_rel = factors[key(self._reference(points[i]))]
            # both factors are ratios with 95% half-widths; their log-difference beyond the
            # two added in quadrature is a level the CIs do not explain
            if abs(math.log(f / now_f)) > ratio_rel(frel, now_rel):
                levels.append((points[i], m, ref_then, f, now_f))
        self._say_batch(batch, short, untied, list(reuse.values()), levels)
        return [out[i] for i in range(len(points))]

    def _learn(self, point: Point, value: Scaled) -> None:
        """A reference point (the base network at a new resolution) measured for the first
        time: its value on the scale, for the batches to come."""
        if self._is_reference(point) and key(point) not in self.values:
            self.values[key(point)] = OnScale(value.latency_ms, value.rel)
            self.specs[key(point)] = point[0]

    def _factor(self, ref: Point, m: Measurement, batch: int, measured: int,
                reused: int) -> tuple[float, float]:
        """The batch's factor for reference `ref` measured now as `m`, recorded."""
        k = key(ref)
        now = OnScale(m.latency_ms, _rel(m))
        first = False
        if k not in self.values:
            earlier = self._earliest(ref, m) if self.first_from_store else None
            if k in self.anchor_values:
                self.values[k] = self.anchor_values[k]
            elif earlier is not None:
                self.values[k] = OnScale(earlier.latency_ms, _rel(earlier))
            else:
                self.values[k], first = now, True
        on = self.values[k]
        f, frel = (1.0, 0.0) if first else (now.ms / on.ms, ratio_rel(now.rel, on.rel))
        self.batches.append(BatchFactor(batch, label(ref), now.ms, now.rel, on.ms, f, frel,
                                        measured, reused, m.load,
                                        m.taken[1] if m.taken else 0.0))
        return f, frel

    @staticmethod
    def _scaled(m: Measurement, ref: Measurement, on: OnScale, frel: float, batch: int,
                provenance: str, note: str = "") -> Scaled:
        """`m` on the scale by the reference `ref` measured in the same interleaved run: each
        visit of `m` divided by the factor of the reference's visit nearest in time (reference
        visit / reference on the scale), then the median and its CI of what that gives. A
        paired design: a step in the machine's speed inside a batch (the reference slower in
        most of its rounds, the point in few of its own) cancels visit by visit, where a ratio
        of the two medians would be off by the whole step."""
        visits = _visits(ref)
        if not visits or len(m.times) != len(m.samples_ms):
            f = ref.latency_ms / on.ms        # no times to pair by: the ratio of medians
            return Scaled(m, m.latency_ms / f, ratio_rel(_rel(m), frel), f, frel, batch,
                          provenance, note)
        times = [t for t, _ in visits]
        out = []
        for sample, t in zip(m.corrected_samples(), m.times):
            j = bisect.bisect_left(times, t)
            near = min((j2 for j2 in (j - 1, j) if 0 <= j2 < len(times)),
                       key=lambda j2: abs(times[j2] - t))
            out.append(sample * on.ms / visits[near][1])
        st = summarize(out, m.rounds or None, m.confidence)
        rel = st.ci_halfwidth_rel if math.isfinite(st.ci_halfwidth_rel) else 0.0
        return Scaled(m, st.median_ms, ratio_rel(rel, on.rel), m.latency_ms / st.median_ms,
                      frel, batch, provenance, note)

    # -- the store -------------------------------------------------------------------------
    def _earliest(self, ref: Point, now: Measurement) -> Measurement | None:
        """The reference's earliest finished measurement in the store other than `now`,
        preferring one that meets the protocol (its first steady one)."""
        found = [mid for mid, res, *_ in self.store.done_of(self.info.context_key,
                                                             ref[0].fingerprint)
                 if res == int(ref[1]) and mid != now.measurement_id]
        ms = [self.store.measurement(mid) for mid in found]
        steady = [m for m in ms if meets(m, self.protocol)]
        return (steady or ms or [None])[0]

    def _stored(self, point: Point) -> Measurement | None:
        latest = self.store.latest(self.info.context_key, point[0].fingerprint, int(point[1]))
        if latest is None or latest[1] != "done":
            return None
        return self.store.measurement(latest[0])

    def _tie(self, point: Point, m: Measurement, known: set[Key]
             ) -> tuple[Measurement, Key] | None:
        """The finished reference measurement taken in the same run as `m` (its samples cover
        at least MIN_OVERLAP of `m`'s sampling time), of a reference with a value on the
        scale (or getting one in this batch); None when there is none."""
        if not m.taken:
            return None
        ref_fp = self._reference(point)[0].fingerprint
        a, b = m.taken
        best, best_cover = None, 0.0
        for mid, res, c, d in self.store.done_of(self.info.context_key, ref_fp):
            if (ref_fp, res) not in known or mid == m.measurement_id:
                continue
            cover = ((c <= a <= d) * 1.0 if b == a
                     else max(0.0, min(b, d) - max(a, c)) / (b - a))
            if cover >= MIN_OVERLAP and cover > best_cover:
                best, best_cover = (mid, (ref_fp, res)), cover
        if best is None:
            return None
        return self.store.measurement(best[0]), best[1]

    # -- what a batch says -----------------------------------------------------------------
    def _say_batch(self, batch: int, short, untied, reused, levels) -> None:
        if self.say is None:
            return
        p = self.protocol
        if short:
            (pt, m), n = short[0], len(short)
            self.say(f"batch {batch}: {n} stored latenc{'y' if n == 1 else 'ies'} fell short of "
                     f"the protocol (CI +-{p.ci_target_pct:g}% after >= {p.min_rounds} rounds, "
                     f"or {p.max_rounds} rounds), measured again; the first, {label(pt)}: "
                     f"{m.conditions()}")
        if untied:
            (pt, m), n = untied[0], len(untied)
            self.say(f"batch {batch}: {n} stored latenc{'y' if n == 1 else 'ies'} had no "
                     f"reference measured with {'it' if n == 1 else 'them'} (level unknown), "
                     f"measured again; the first, {label(pt)}: {m.conditions()}")
        if reused:
            m, ref_then, _ = reused[0]
            self.say(f"batch {batch}: {len(reused)} latenc{'y' if len(reused) == 1 else 'ies'} "
                     f"reused from the store, each put on the scale by the reference measured "
                     f"with it; the first, {m.network}@{m.resolution}: {m.conditions()}")
        if levels:
            pt, m, ref_then, f, now_f = levels[0]
            self.say(f"batch {batch}: {len(levels)} reused latenc"
                     f"{'y was' if len(levels) == 1 else 'ies were'} measured at another level "
                     f"than now: {ref_then.network}@{ref_then.resolution} ran at x{f:.2f} of "
                     f"the scale then ({ref_then.conditions()}) and x{now_f:.2f} now; they are "
                     f"put on the scale by their own factor (--remeasure measures them again)")

    # -- persistence (a search's state.json) -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"anchor": list(self.anchor) if self.anchor else None,
                "values": [[k[0], k[1], v.ms, v.rel] for k, v in self.values.items()],
                "specs": {f"{k[0]}@{k[1]}": s.to_dict() for k, s in self.specs.items()
                          if hasattr(s, "to_dict") and k in self.values},
                "batches": [b.to_dict() for b in self.batches]}

    def restore(self, d: dict[str, Any], spec_from_dict: Callable[[dict], Any]) -> None:
        """Take up a saved scale (a resumed search goes on on the scale it began)."""
        if not d:
            return
        self.anchor = tuple(d["anchor"]) if d.get("anchor") else None
        self.values = {(fp, int(r)): OnScale(float(ms), float(rel))
                       for fp, r, ms, rel in d.get("values", [])}
        for text, sd in d.get("specs", {}).items():
            fp, _, r = text.rpartition("@")
            self.specs[(fp, int(r))] = spec_from_dict(sd)
        self.batches = [BatchFactor.from_dict(b) for b in d.get("batches", [])]


__all__ = ["LatencyScale", "Scaled", "BatchFactor", "OnScale", "ScaleError", "ratio_rel", "key",
           "label", "MIN_OVERLAP"]
