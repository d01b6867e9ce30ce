"""A fallback chain of latency sources, on one scale: `--latency table:T --latency lut:L
--latency cpu`.

Each point is asked of the first source, and what it lacks (a network a table has no row for,
a block a LUT never measured) of the next. The chain keeps what the sources say on one scale:

- a LUT after a table is calibrated to it on the networks both have (`calibration.py`: one
  factor per resolution, or one overall, with its RMS error), and its predictions are kept
  monotone in network size against everything the search has read (`calibration.Monotone`);
- a live device after a table is put on the table's scale: the reference of its latency
  scale (the base network at each resolution) takes the table's recorded row as its value,
  so a live batch is divided by (reference now / reference in the table).

Which source answered each point is kept (`origin`: trace.csv's `latency_from`), with its
provenance (`provenance`: table, lut-calibrated, live, ...), and how often each source was
passed over (`misses`). A point no source has is one line naming, per file, what it lacks and
how to record it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from latency_lab.errors import UserError
from latency_lab.network.spec import NetworkSpec
from latency_lab.search.calibration import LutCalibration, Monotone, calibrate_lut_to_table
from latency_lab.search.pycall import SourceError
from latency_lab.search.source_base import LatencySource, Point, provenance_record


def _replay(src: LatencySource, kind: str):
    """The replay device of a `table:`/`lut:` source, or None."""
    dev = getattr(src, "device", None)
    return dev if getattr(src, "replay", False) and getattr(dev, "name", "") == kind else None


class ChainSource(LatencySource):
    """Sources tried in order for each point (see the module docstring)."""

    def __init__(self, sources: Sequence[LatencySource], reference: NetworkSpec | None = None,
                 say: Callable[[str], None] | None = None):
        self.sources = list(sources)
        self.batched = any(s.batched for s in self.sources)
        self.instant = all(s.instant for s in self.sources)
        self.answered: dict[tuple[str, int], int] = {}
        self.misses = [0] * len(self.sources)
        self.first_miss: dict[int, str] = {}
        self.say = say
        self.monotone = Monotone()
        self.notes: dict[tuple[str, int], str] = {}
        self.values: dict[tuple[str, int], float] = {}
        self.calibrations: dict[int, LutCalibration] = {}
        self._calibrate()
        self._anchor_live(reference)

    # -- one scale -------------------------------------------------------------------------
    def _calibrate(self) -> None:
        """Every LUT calibrated to the nearest table before it in the chain."""
        table = None
        for n, src in enumerate(self.sources):
            table = _replay(src, "table") or table
            lut = _replay(src, "lut")
            if lut is not None and table is not None:
                cal = calibrate_lut_to_table(lut.lut, table.table, lut.path, table.path)
                self.calibrations[n] = cal
                if self.say:
                    self.say(cal.describe())

    def _anchor_live(self, reference: NetworkSpec | None) -> None:
        """A live device after a table: its scale's references take the table's rows."""
        tables = [t for t in (_replay(s, "table") for s in self.sources) if t is not None]
        if tables:
            anchor_to_table(self.sources, tables[0], reference, self.say)

    def _lut_value(self, n: int, spec: NetworkSpec, res: int, raw: float) -> float:
        """A LUT's prediction on its table's scale, kept monotone; the note says how."""
        cal = self.calibrations.get(n)
        f = cal.factor(res) if cal else None
        value = raw * f.factor if f else raw
        lut = _replay(self.sources[n], "lut").lut

        def increment(big: NetworkSpec, small: NetworkSpec) -> float | None:
            try:
                return (lut.predict_ms(big, res) - lut.predict_ms(small, res)) * (
                    f.factor if f else 1.0)
            except UserError:
                return None

        value, note = self.monotone.bound(spec, res, value, increment)
        if f or note:
            self.notes[(spec.fingerprint, int(res))] = "; ".join(
                x for x in ((f"x{f.factor:.3f} {f.where} (+-{f.rms_pct:.1f}% RMS on {f.n} "
                             "shared networks)") if f else "", note) if x)
        return value

    # -- answering -------------------------------------------------------------------------
    def latency_many(self, points: Sequence[Point]) -> list[float]:
        out: list[float | None] = [None] * len(points)
        todo, reasons = list(range(len(points))), {}
        for n, src in enumerate(self.sources):
            if not todo:
                break
            if src.batched and not getattr(src, "replay", False):
                # a live device measures what is left, interleaved, and has it all
                for i, v in zip(todo, src.latency_many([points[i] for i in todo])):
                    out[i] = v
                    self.answered[(points[i][0].fingerprint, int(points[i][1]))] = n
                    self.known_latency(*points[i], v)
                todo = []
                break
            rest = []
            for i in todo:
                spec, res = points[i]
                try:
                    out[i] = src.latency_ms(spec, res)
                    self.answered[(spec.fingerprint, int(res))] = n
                except UserError as exc:     # not covered here: ask the next source
                    rest.append(i)
                    self.misses[n] += 1
                    self.first_miss.setdefault(n, str(exc))
                    reasons.setdefault(i, []).append((src, str(exc)))
                    continue
                if _replay(src, "lut") is not None:
                    out[i] = self._lut_value(n, spec, int(res), out[i])
                self.known_latency(spec, res, out[i])
            todo = rest
        if todo:
            spec, res = points[todo[0]]
            raise SourceError(lacking(spec, int(res), reasons.get(todo[0], [])))
        return out

    def known_latency(self, spec: NetworkSpec, resolution: int, latency_ms: float) -> None:
        """A latency the search holds (also one from its saved state, on resume): what later
        predictions are kept monotone against."""
        self.monotone.add(spec, resolution, latency_ms)
        self.values[(spec.fingerprint, int(resolution))] = latency_ms

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        return self.latency_many([(spec, resolution)])[0]

    def _source(self, spec: NetworkSpec, resolution: int) -> LatencySource | None:
        n = self.answered.get((spec.fingerprint, int(resolution)))
        return None if n is None else self.sources[n]

    def origin(self, spec: NetworkSpec, resolution: int) -> str:
        src = self._source(spec, resolution)
        return src.origin(spec, resolution) if src else ""

    def detail(self, spec: NetworkSpec, resolution: int) -> str:
        return self.provenance(spec, resolution)["detail"]

    def provenance(self, spec: NetworkSpec, resolution: int) -> dict[str, Any]:
        k = (spec.fingerprint, int(resolution))
        n = self.answered.get(k)
        if n is None:
            return provenance_record("")
        p = dict(self.sources[n].provenance(spec, resolution))
        cal = self.calibrations.get(n)
        f = cal.factor(resolution) if cal else None
        note = self.notes.get(k, "")
        if f is not None or note:
            v = self.values.get(k, math.nan)
            half = 1.96 * f.rms_pct / 100 if f else math.nan
            p.update(provenance="lut-calibrated" if f else p["provenance"],
                     ci_low_ms=v * (1 - half), ci_high_ms=v * (1 + half),
                     scale_factor=f.factor if f else math.nan, note=note,
                     detail=(f"LUT prediction {v:.3f} ms on the table's scale ({note}); 95% "
                             f"CI from the calibration's RMS error" if f else p["detail"]
                             + f"; {note}"))
        return p

    def scale_state(self) -> dict | None:
        live = [s for s in self.sources if getattr(s, "scale", None) is not None]
        return live[0].scale_state() if live else None

    def restore_scale(self, state: dict | None) -> None:
        for s in self.sources:
            if getattr(s, "scale", None) is not None:
                s.restore_scale(state)

    def describe(self) -> str:
        return " else ".join(s.describe() for s in self.sources)

    def device_parts(self) -> list[tuple[str, str]]:
        return [p for s in self.sources for p in s.device_parts()]

    def report(self) -> str:
        """How many points each source answered and missed, in words."""
        counts = [0] * len(self.sources)
        for n in self.answered.values():
            counts[n] += 1
        parts = [f"{s.label} answered {c}" + (f", lacked {m} (first: {self.first_miss[k]})" if m else "")
                 for k, (s, c, m) in enumerate(zip(self.sources, counts, self.misses))]
        return "latency sources: " + "; ".join(parts)

    def close(self) -> None:
        for s in self.sources:
            s.close()


def anchor_to_table(sources: Sequence[LatencySource], table, reference: NetworkSpec | None,
                    say: Callable[[str], None] | None = None) -> int:
    """Put the live sources among `sources` on the scale of a recorded table (a TableDevice):
    the references of their latency scales (the base network at each resolution) take the
    table's rows as their values, so a batch's factor is reference now / reference in the
    table. Returns how many reference rows the table gave (0: it has none of `reference`)."""
    from latency_lab.measure.scale import OnScale

    live = [s for s in sources if getattr(s, "scale", None) is not None]
    if not live or reference is None:
        return 0
    rows = {}
    for r in table.table.rows:
        if r.spec.fingerprint == reference.fingerprint and r.latency_ms > 0:
            half = (r.ci_high_ms - r.ci_low_ms) / 2 / r.latency_ms
            rows[(r.spec.fingerprint, int(r.resolution))] = OnScale(r.latency_ms, half)
    for src in live:
        src.scale.anchor_values.update(rows)
    if say and rows:
        same = table.recorded_context.context_key == live[0].scale.info.context_key
        say(f"live latencies go on the scale of {table.path}: each batch's reference "
            f"({reference.name} at {', '.join(str(k[1]) for k in sorted(rows))} px) takes the "
            f"table's row as its value, elsewhere the first of them"
            + ("" if same else f" (recorded in context {table.recorded_context.context_key}, "
                               f"measured now in {live[0].scale.info.context_key})"))
    return len(rows)


def lut_steps(base: NetworkSpec, spec: NetworkSpec, limit: int = 40):
    """(width steps, depth steps) per stage that put `spec` in `base`'s scaled LUT space
    (`scaling.scaled_space_blocks`), or None when no step count does: another stem or head
    width (the scaling baselines widen both), other stages or block kinds, a shallower stage."""
    from latency_lab.network.scaling import width_options

    if (len(spec.stages) != len(base.stages) or spec.stem != base.stem
            or spec.head_width != base.head_width or spec.activation != base.activation):
        return None
    widths, depths = [], []
    for s, b in zip(spec.stages, base.stages):
        if ((s.kernel, s.expansion, s.stride, s.se_ratio, s.kind)
                != (b.kernel, b.expansion, b.stride, b.se_ratio, b.kind) or s.depth < b.depth):
            return None
        k = next((k for k in range(limit + 1) if s.width in width_options(b.width, k)), None)
        if k is None:
            return None
        widths.append(k)
        depths.append(int(s.depth > b.depth))
    return widths, depths


def lut_hint(lut, spec: NetworkSpec, res: int) -> str:
    """How to record what a LUT lacks for (spec, res): the `lut record` command that covers it
    (the LUT's own limits raised where the network needs more), or why none of its space does."""
    base, n = lut.network, len(lut.network.stages)
    steps = lut_steps(base, spec)
    if steps is None:
        return (f"no `lut record` of {base.name}'s scaled space holds {spec.name} (stem "
                f"{spec.stem.width}, head {spec.head_width}, depths "
                f"{' '.join(str(s.depth) for s in spec.stages)}: not {base.name} widened or "
                f"deepened per stage), so a device or a table has to give it")
    from latency_lab.network.scaling import per_stage

    def merged(have, need):
        v = [max(a, b) for a, b in zip(per_stage(have, n, "steps"), need)]
        return str(v[0]) if len(set(v)) == 1 else ",".join(map(str, v))

    grid = ",".join(str(r) for r in sorted({*map(int, lut.resolutions), int(res)}))
    return (f"`latency-lab lut record --network {base.name} --resolutions {grid} "
            f"--max-width-steps {merged(lut.max_width_steps, steps[0])} --max-depth-steps "
            f"{merged(lut.max_depth_steps, steps[1])} --statistic {lut.statistic} ...` records "
            f"the blocks it lacks")


def lacking(spec: NetworkSpec, res: int, reasons: list[tuple[LatencySource, str]]) -> str:
    """One line: which file lacks what for this point, and how to record it."""
    parts, hints = [], []
    for src, why in reasons:
        first = why.split(";")[0].strip()
        parts.append(f"{getattr(src, 'name', src.label)}: {first}")
        if _replay(src, "lut") is not None:
            hints.append(lut_hint(_replay(src, "lut").lut, spec, res))
        elif _replay(src, "table") is not None:
            hints.append("`--latency cpu` (a device) last in the chain measures what the files "
                         "lack, on the table's scale; a table gets it from `latency-lab table "
                         "export` of a store that measured it (on a machine as quiet as the "
                         "table's)")
    return (f"no latency source has {spec.name} ({spec.fingerprint}) at {res} px: "
            + "; ".join(parts) + (f". To record it: {'; '.join(dict.fromkeys(hints))}"
                                  if hints else ""))


__all__ = ["ChainSource", "lacking", "lut_hint", "lut_steps", "anchor_to_table"]
