"""Sweeps that measure where the candidate decision is uncertain, and say when it is settled.

A sweep is run for its candidates (`candidates.py`: the last resolution before each of the
largest upward jumps). On a quiet machine every point reaches its CI target in a few rounds and
the decision comes for free; on a busy one (or a throttling phone) the 15-minute cap comes
first, and rounds spent alike on every point leave each CI wide. Most points are not in doubt:
a point far from any step only fixes the smooth trend, and a step that is clearly a jump (or
clearly nothing) stays so. So, after `FULL_ROUNDS` rounds of every point:

- `decide` reads the detector's steps (every place of the network, `jumps_lattice`) and calls
  a step *ambiguous* when its call could still change the candidates: a kept jump whose z is
  within `MARGIN` of its bar (z_min at a place, z_other elsewhere), or a step that is not a
  jump but whose size's 95% interval reaches the smallest kept jump (or `RELEVANT_PCT` while
  fewer than `max_candidates` are kept). So "no jump" is settled only when the steps are shown small,
  not merely unproven: after 5 rounds at +-20% CIs (load 10) every step is unproven.
  Drops are never candidates.
- `DecisionPlanner` (the protocol's `planner` hook) sends the next round to the `SIDE` points on
  each side of every ambiguous step and to both sides of each kept candidate's step, not to
  every point; the drift correction goes on over these partial rounds (`measure/drift.py`).
- When nothing is ambiguous the decision is settled: every open point stops as "decided". The
  time cap stops the sweep otherwise, and the decision is then reported as not settled, with
  the steps still in doubt.

A point stopped as "decided" did not meet the CI target: a later run with `--no-adaptive`
measures it further (the protocol treats it like a time-capped point).
"""

from __future__ import annotations

from dataclasses import dataclass, field


FULL_ROUNDS = 5     # rounds of every point before any is skipped (5: the bootstrap CI's minimum,
                    # latency_lab.measure.stats.MIN_ROUNDS_FOR_BOOTSTRAP)
MARGIN = 1.0        # a step within this many z of its bar is not yet decided
SIDE = 3            # points each side of an ambiguous step that the next round visits
RELEVANT_PCT = 2.0  # a step that may be this large may still become a candidate
DECIDED = "decided"


@dataclass(frozen=True)
class Decision:
    """What the candidates rest on: the kept jumps (upward, by size), the steps whose call is
    still in doubt, and whether the decision is settled."""

    kept: tuple[int, ...]             # break indices k of the kept jumps, largest first
    ambiguous: tuple[int, ...]        # break indices of the steps in doubt
    settled: bool
    why: str                          # in words, for the terminal and candidates.csv
    ties: dict[int, tuple[int, ...]] = field(default_factory=dict)   # kept k -> not-kept k
                                      # whose size is inside its 95% interval (a tie)


def _bar(g, z_min: float, z_other: float) -> float:
    return z_min if g.stride else z_other


def _pct(g, level: float) -> tuple[float, float]:
    """A step's size and the half-width of its 95% interval, in % of `level`."""
    return 100 * g.step_ms / level, 100 * 1.959964 * g.step_se_ms / level


def decide(result, max_candidates: int = 4, z_min: float | None = None,
           z_other: float | None = None, margin: float = MARGIN) -> Decision:
    """The candidate decision of a `curve.JumpResult` (see the module's docstring)."""
    from latency_lab.sweeps.jumps_lattice import DEFAULT_Z_OTHER, DEFAULT_Z_PLACE

    z_min = DEFAULT_Z_PLACE if z_min is None else z_min
    z_other = DEFAULT_Z_OTHER if z_other is None else z_other
    r = result.curve.resolution
    level = {g.k: g.left_coef[0] + g.left_coef[1] * r[g.k] for g in result.tests}
    ups = [g for g in result.tests if g.z > 0 and level[g.k] > 0]
    jumps = [g for g in ups if g.z >= _bar(g, z_min, z_other)]
    jumps.sort(key=lambda g: -g.step_ms / level[g.k])
    limit = max_candidates if max_candidates > 0 else len(jumps)
    kept = jumps[:limit]
    floor = min((_pct(g, level[g.k])[0] for g in kept), default=RELEVANT_PCT) \
        if len(kept) >= limit else RELEVANT_PCT
    ambiguous = []
    for g in result.tests:
        if level[g.k] <= 0:
            continue
        bar = _bar(g, z_min, z_other)
        size, half = _pct(g, level[g.k])
        if any(g is h for h in kept):
            doubt = g.z < bar + margin
        elif g.z >= bar:          # a jump, smaller than those kept: a tie at most
            doubt = False
        else:                     # not a jump: could it be one large enough to be kept?
            doubt = size + half >= floor
        if doubt:
            ambiguous.append(g.k)
    ties = {}
    for g in kept:
        size, half = _pct(g, level[g.k])
        tied = tuple(h.k for h in jumps[limit:] if abs(_pct(h, level[h.k])[0] - size) <= half)
        if tied:
            ties[g.k] = tied
    names = ", ".join(f"{int(r[k])}->{int(r[k + 1])}" for k in sorted(ambiguous))
    if ambiguous:
        why = (f"not settled: the steps at {names} px could still change the candidates (a "
               f"kept jump's z within {margin:g} of its bar, or a 95% interval reaching "
               f"{floor:.1f}%)")
    elif kept:
        what = (f"as large as the smallest kept ({floor:.1f}%)" if len(kept) >= limit
                else f"a jump of {floor:.1f}% or more")
        why = (f"settled: the {len(kept)} kept jump(s) are each at least {margin:g} z over "
               f"their bar, and no other step could be {what}")
    else:
        why = f"settled: no jump, and no step could be {floor:.1f}% or more"
    return Decision(tuple(g.k for g in kept), tuple(sorted(ambiguous)), not ambiguous, why,
                    ties)


def curve_of(measurements):
    """The sweep as the jump report will read it, from the points measured so far: a table
    of drift-corrected medians with their CIs and, when every point has raw samples, their
    floors (`floor.floor_ms`); None with fewer than `curve.MIN_POINTS` measured points."""
    import pandas as pd

    from latency_lab.sweeps.curve import MIN_POINTS
    from latency_lab.sweeps.floor import floor_ms

    points = sorted((m for m in measurements if m.measured), key=lambda m: m.resolution)
    points = [m for m in points if m.stats.ci_high_ms > m.stats.ci_low_ms]
    if len(points) < MIN_POINTS:
        return None
    table = pd.DataFrame({"resolution": [m.resolution for m in points],
                          "latency_ms": [m.stats.median_ms for m in points],
                          "ci_low_ms": [m.stats.ci_low_ms for m in points],
                          "ci_high_ms": [m.stats.ci_high_ms for m in points]})
    if all(m.samples_ms for m in points):
        table["floor_ms"] = [floor_ms(m.samples_ms) for m in points]
    return table


@dataclass
class DecisionPlanner:
    """The protocol's `planner` for a sweep of `network`: full rounds until every point has
    `full_rounds`, then rounds beside the ambiguous steps until the decision settles.
    `last` keeps the latest decision (None before the first), for the sweep's report."""

    network: object
    max_candidates: int = 4
    full_rounds: int = FULL_ROUNDS
    side: int = SIDE
    last: Decision | None = None
    decided_at_round: int | None = None
    partial_rounds: int = 0

    def __call__(self, measurements: dict, open_points: frozenset):
        from latency_lab.measure.protocol import RoundPlan
        from latency_lab.sweeps.floor import detect_best

        done = min(m.n_rounds for m in measurements.values())
        if done < self.full_rounds:
            return RoundPlan()
        table = curve_of(measurements.values())
        if table is None:
            return RoundPlan()
        result, _ = detect_best(table, network=self.network)
        curve = result.curve
        decision = decide(result, self.max_candidates)
        self.last = decision
        if decision.settled:
            self.decided_at_round = done
            return RoundPlan(stop=DECIDED, note=f"candidate decision {decision.why}")
        index = {m.resolution: i for i, m in measurements.items()}
        r = curve.resolution.astype(int)
        wanted: set[int] = set()
        for k in decision.ambiguous:
            wanted.update(r[max(0, k + 1 - self.side):k + 1 + self.side])
        for k in decision.kept:
            wanted.update(r[k:k + 2])
        visit = frozenset(index[res] for res in wanted if res in index) & open_points
        names = ", ".join(str(int(r[k])) for k in decision.ambiguous)
        self.partial_rounds += 1
        return RoundPlan(visit=visit, note=f"measuring {len(visit)} point(s) beside the "
                                            f"steps in doubt after {names} px")
