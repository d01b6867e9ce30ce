"""How far a search is, and what it will cost: evaluations done, expected, time left.

A zen-tuned search showed nothing for 3.5 minutes (the first iteration's ten evaluations, 14 s
each with torch's two threads spinning on a loaded 2-core host) and then took an hour
(issue 26). The search now times every evaluation and, once evaluations are slow enough to
matter (`SLOW_S`), says after each one how many are done, about how many a search like this
makes, and about how long that is:

- the cost of one evaluation is the mean of this run's evaluations (cached ones cost nothing
  and are not counted);
- the number of evaluations: per resolution, the baseline, then K candidates per iteration
  for about `(budget - baseline latency) / latency added per step` iterations (the steps
  taken so far at that resolution; before the first step, the cheapest candidate's), plus the
  single-stage candidates of the last iteration; a resolution not started yet is counted like
  the average of the started ones. An estimate: said as "about", refined after every step.

The first line comes after the first evaluation (its cost is then measured, not guessed); with
instant evaluators (`synthetic`, `table:`) nothing is said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

SLOW_S = 1.0            # evaluations at least this slow on average are reported one by one


def duration(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass
class _Res:
    base_ms: float
    iterations: float | None = None   # expected, once a step's cost is known
    done: bool = False


@dataclass
class SearchProgress:
    """Fed by the search (`start_resolution`, `step`, `evaluated`), says lines to `log`."""

    log: Callable[[str], None]
    budget_ms: float
    resolutions: int
    k: int
    singles: int                    # single-stage candidates of a last iteration
    evaluator: str = ""
    evaluations: int = 0            # made by this run (cache hits not counted)
    cached: int = 0                 # values the search needed and had (state, store, repeats)
    seconds: float = 0.0            # their total time
    per_res: dict[int, _Res] = field(default_factory=dict)
    said_cost: bool = False

    def start_resolution(self, r: int, base_ms: float) -> None:
        self.per_res[r] = _Res(base_ms)

    def step(self, r: int, latency_ms: float, steps: int) -> None:
        """A step taken at `r` to `latency_ms` after `steps` steps: the iterations to expect."""
        res = self.per_res.get(r)
        if res is None or steps < 1:
            return
        added = (latency_ms - res.base_ms) / steps
        if added > 0:
            res.iterations = max(steps, (self.budget_ms - res.base_ms) / added)

    def first_candidates(self, r: int, latencies_ms: list[float]) -> None:
        """Before the first step: the median latency the candidates add, as a step's cost
        (a table and a LUT may put a candidate below its baseline: those are left out)."""
        res = self.per_res.get(r)
        added = sorted(x - res.base_ms for x in latencies_ms if x > res.base_ms) if res else []
        if res is not None and res.iterations is None and added:
            res.iterations = (self.budget_ms - res.base_ms) / added[len(added) // 2]

    def finish_resolution(self, r: int, steps: int) -> None:
        res = self.per_res.get(r)
        if res is not None:
            res.done, res.iterations = True, float(steps)

    def expected(self) -> int | None:
        """About how many evaluations the whole search makes (None before any estimate)."""
        known = [r.iterations for r in self.per_res.values() if r.iterations is not None]
        if not known:
            return None
        mean = sum(known) / len(known)
        per = [r.iterations if r.iterations is not None else mean for r in self.per_res.values()]
        per += [mean] * (self.resolutions - len(self.per_res))
        return max(self.evaluations + self.cached,
                   int(sum(1 + self.k * math.ceil(i) + self.singles for i in per)))

    def had(self, n: int) -> None:
        """`n` values the search needed were there already (no evaluation, no time)."""
        self.cached += n

    def evaluated(self, seconds: float, where: str = "") -> None:
        self.evaluations += 1
        self.seconds += seconds
        mean = self.seconds / self.evaluations
        if mean < SLOW_S:
            return
        total = self.expected()
        if not self.said_cost and total:    # the cost, as soon as it can be said
            self.said_cost = True
            self.log(f"evaluations take {mean:.1f} s each ({self.evaluator}); a search like "
                     f"this makes about {total}: about {duration(total * mean)} in all "
                     f"(an estimate, refined after every step)")
        done = self.evaluations + self.cached
        left = (f" of about {total}, ~{duration(max(0, total - done) * mean)} left"
                if total else "")
        self.log(f"evaluation {done}{left} ({where + ', ' if where else ''}{seconds:.1f} s; "
                 f"{mean:.1f} s on average)")
