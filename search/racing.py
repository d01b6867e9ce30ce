"""Decisions that know their noise: an RBIS iteration's choice raced over seeds.

RBIS takes the candidate with the best score, (value - parent's) / (latency - parent's). With
one training per candidate that choice is often noise: on Fashion-MNIST at 32 px the seed
range of one training of mbconv-tiny was 1.6 points, a single step's effect 0.3. So after an
iteration's candidates are evaluated, `race`:

1. gives every evaluated candidate an interval of its value: for an evaluator with a `seeds`
   option (train:, net2net:), the 95% interval of its mean over its seeds with the seed noise
   pooled over every point the search evaluated with two seeds or more (`Cache.noise`; the
   baseline is evaluated with `max_seeds` seeds, so the pool exists from the first
   iteration); before there is a pool, a candidate with one seed has no interval (its Wilson
   interval over the validation images knows nothing of training noise). An evaluator
   without seeds keeps its own CI (Zen-Score's over repeats), or has none;
2. maps it to a score interval (the parent's value taken as exact: it is common to every
   candidate of the iteration) and finds the contenders, the candidates whose score interval
   overlaps the leader's (two intervals that are both exactly 0, i.e. both surely no better
   than the parent, are not a contest);
3. while there are contenders, gives the leader and every contender one more seed (one batch)
   and decides again, until the leader is separated or every one of them has `max_seeds`.

The outcome is the iteration's `Decision`: `separated` (the leader's interval overlaps no
other), `tie at cap` (contenders left with `max_seeds` seeds each: the choice is RBIS's rule
applied to means that noise cannot order), `tie` (an evaluator without seeds, whose intervals
overlap), `no interval` (no spread known, e.g. one seed each with `max_seeds` 1), `single
candidate`, or `none` (nothing
eligible). The trace shows it on the chosen row and marks the contenders.

The cap, `max_seeds` (`--max-seeds`, default 3), bounds the cost: at most
(max_seeds - seeds) more trainings per candidate of an iteration, and max_seeds trainings of
the baseline. Three is the fewest seeds with a usable spread of its own (the t quantile for
2 degrees of freedom is 4.30, for 1 it is 12.7); with the pool the interval of a mean over 3
seeds is +-t(dof) x sd / 1.73.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from latency_lab.search.intervals import overlap, pooled_ci

DEFAULT_MAX_SEEDS = 3


@dataclass
class Decision:
    outcome: str
    leader: int | None = None
    contenders: tuple[int, ...] = ()
    rounds: int = 0
    seeds: dict[int, int] = field(default_factory=dict)   # candidate -> seeds at the end

    def to_dict(self, labels) -> dict:
        return {"outcome": self.outcome,
                "leader": labels[self.leader] if self.leader is not None else None,
                "contenders": [labels[j] for j in self.contenders], "rounds": self.rounds,
                "seeds": {labels[j]: n for j, n in sorted(self.seeds.items())}}


def value_interval(cache, request) -> tuple[float, float] | None:
    """The 95% interval of an evaluated request's value that a decision uses (see the module
    docstring)."""
    sp = cache.spread_of(request)
    if cache.evaluator.seeds is None:
        return tuple(sp["ci"]) if sp["ci"] else None
    noise = cache.noise()
    if noise is not None:
        return pooled_ci(sp["draws"], *noise)
    return tuple(sp["ci"]) if sp["n"] >= 2 and sp["ci"] else None


def score_interval(node, parent) -> tuple[float, float] | None:
    """The interval of RBIS's score for a value interval (lo, hi) of `node`."""
    if node.ci is None:
        return None
    lo, hi = node.ci
    dlat = node.latency_ms - parent.latency_ms
    if dlat <= 0:           # no slower: preferred if no worse (score inf), else 0
        return (math.inf if lo >= parent.value else 0.0, math.inf if hi >= parent.value else 0.0)
    return max(lo - parent.value, 0.0) / dlat, max(hi - parent.value, 0.0) / dlat


def update_interval(cache, node) -> None:
    """Set the node's n (seeds or repeats) and the interval decisions use."""
    sp = cache.spread_of(node.eval_request)
    node.n = len(sp["draws"]) if cache.evaluator.seeds is not None else sp["n"]
    node.ci = value_interval(cache, node.eval_request)


def race(cands: list, parent, cache, choose, max_seeds: int = DEFAULT_MAX_SEEDS) -> Decision:
    """Choose among the evaluated `cands` (Nodes) as RBIS does, adding seeds to the leader and
    its contenders until separated or at `max_seeds`; updates the nodes' values, intervals,
    seeds and requests. `choose(cands, parent)` is RBIS's rule."""
    evaluated = [j for j, c in enumerate(cands) if not math.isnan(c.value)]
    seeded = cache.evaluator.seeds is not None
    cap = max(max_seeds, cache.evaluator.seeds or 1)
    rounds = 0
    while True:
        for j in evaluated:
            update_interval(cache, cands[j])
        pick = choose(cands, parent)
        seeds = {j: cands[j].n for j in evaluated} if seeded else {}
        if pick is None:
            return Decision("none", rounds=rounds, seeds=seeds)
        if len(evaluated) == 1:
            return Decision("single candidate", pick, (), rounds, seeds)
        lead = score_interval(cands[pick], parent)
        if lead is None and not seeded:
            return Decision("no interval", pick, (), rounds, seeds)
        contenders = []
        for j in evaluated:
            if j == pick:
                continue
            iv = score_interval(cands[j], parent)
            if iv is None or lead is None or (overlap(iv, lead)
                                              and not (iv == lead == (0.0, 0.0))):
                contenders.append(j)
        if not contenders:
            return Decision("separated", pick, (), rounds, seeds)
        if not seeded:
            return Decision("tie", pick, tuple(contenders), rounds, seeds)
        grow = [j for j in [pick, *contenders] if cands[j].n < cap]
        if not grow:
            outcome = "tie at cap" if lead is not None else "no interval"
            return Decision(outcome, pick, tuple(contenders), rounds, seeds)
        requests = [cache.seeded(cands[j].request, cands[j].n + 1) for j in grow]
        for j, req, value in zip(grow, requests, cache.evaluate(requests)):
            cands[j].eval_request, cands[j].value = req, value
        rounds += 1


__all__ = ["race", "Decision", "value_interval", "score_interval", "update_interval",
           "DEFAULT_MAX_SEEDS"]
