"""The RBIS search driver: stage-dependent incremental scaling per candidate resolution.

The algorithm of the RBIS thesis (resolution-based incremental scaling, Seoul National
University, 2023; steps 2 and 3: stage-dependent incremental scaling, then the best network):

For each resolution r: the parent is the baseline at r (infeasible if slower than the budget
T). Iteration i scales width when i is even, depth when i is odd. The candidates are every
multiset {a, b} (a <= b) of the scalable stages, in lexicographic order ({a, a} scales stage a
twice). All candidates' latencies are read; the K lowest (ties: lexicographic order) are kept
and their accuracy evaluated. score = max(acc - parent_acc, 0) / (latency - parent_latency);
only candidates with latency <= T are eligible; the eligible candidate with the highest score
becomes the parent (ties: lower latency, then lexicographic order), except that a candidate
no slower than its parent and with no loss of accuracy ("preferred") beats every other
(among several preferred ones: higher accuracy, then lower latency, then lexicographic). If no
two-stage candidate is eligible, the single-stage steps of the same dimension are tried with
the same rules (all of them evaluated); the best eligible one is taken and the search at r
stops, or it stops with the current parent. The winner is the per-resolution result with the
highest accuracy (ties: lower latency, then lower resolution). "Accuracy" here is whatever the
evaluator measures (`Evaluator.metric`: top-1 %, or a proxy score such as Zen-Score); files
name it by its metric.

Choices made here where the thesis is silent, each decision-neutral unless stated:
- kept candidates slower than T are not evaluated (they cannot be chosen; accuracy is the
  costly part), and show in the trace with an empty accuracy;
- a candidate whose network equals its parent's (a width step that rounds back, e.g.
  16 * 1.1 -> 16) is not a step and is left out of the candidate set (otherwise it would be
  "preferred" and end the search without scaling);
- an iteration cap (`max_iterations`, default 200) stops a latency source that never grows;
- for an evaluator with seeds (train:, net2net:) the choice is raced (`search.racing`, not in
  the thesis): the leader and the candidates whose intervals overlap it get more seeds, up to
  `max_seeds`, and the trace says which decisions were separated and which tied at the cap;
  the baseline is evaluated with `max_seeds` seeds, and every winner is reported beside the
  baseline's interval (a winner inside it is a tie). With `max_seeds` 1 this is the thesis's
  rule unchanged.

Every (network, resolution) is measured and evaluated at most once (per number of seeds):
values are cached by (fingerprint, resolution) in `DIR/state.json` (`search.search_cache`),
written atomically after every latency read and every evaluator batch. A rerun with the same
sources replays the (deterministic) search from that cache, so an interrupted search resumes
without repeating work and writes the same trace.
The state also keeps each latency's provenance (live, reused, table, lut, lut-calibrated, py;
its CI; a live batch's factor) and a live device's latency scale, so a resumed search goes on
on the scale it began (`latency_lab/measure/scale.py`).

The budget test decides on the latency (the median on the search's scale), as the thesis
does; the trace's `budget_test` says how sure it is: `under` or `over` when the latency's
95% CI (the scale factor's uncertainty included) lies on one side of T, `tie` when it
straddles T. A conservative rule (eligible only when the CI's top is under T) would turn
every near-budget step into a loss and bias the search towards smaller networks; RBIS's
last step sits near the budget by construction, so the tie is said, not decided.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Callable, Sequence

from latency_lab.fileio import write_atomic
from latency_lab.network.scaling import default_stages
from latency_lab.network.spec import NetworkSpec, check_resolution
from latency_lab.search.accuracy_cache import AccuracyCache
from latency_lab.search.evaluators import EvalRequest, Evaluator, Runner, Step, evaluate_locally
from latency_lab.search.intervals import verdict
from latency_lab.search.racing import DEFAULT_MAX_SEEDS, Decision, race, update_interval
from latency_lab.search.scaling import DEPTH, WIDTH, rbis_step
from latency_lab.search.search_cache import STATE_VERSION, Cache, SearchError
from latency_lab.search.sources import LatencySource
from latency_lab.search.trace import (PROVENANCE_COLUMNS, TRACE_COLUMNS, budget_test,
                                      decision_text, mark_origins, trace_columns, write_trace)

DEFAULT_K = 10          # the thesis evaluated 10 candidates per iteration (one per TPU)


def check_stages(spec: NetworkSpec, stages: Sequence[int] | None) -> tuple[int, ...]:
    if stages is None:
        return default_stages(spec)
    stages = tuple(int(s) for s in stages)
    bad = [s for s in stages if not 0 <= s < len(spec.stages)]
    if bad:
        raise SearchError(f"unknown stage index {bad[0]}: {spec.name} has body stages "
                          f"0..{len(spec.stages) - 1}")
    if len(set(stages)) != len(stages) or not stages:
        raise SearchError(f"stages {list(stages)}: give distinct indices, at least one")
    return tuple(sorted(stages))


# -- the search ---------------------------------------------------------------------------------
@dataclass
class Node:
    """A network on the search path: its per-stage width-step counts and depth steps, and the
    step that made it from its parent (`dimension` and `stages`; empty for the baseline)."""

    spec: NetworkSpec
    width_steps: tuple[int, ...]
    depth_steps: tuple[int, ...]
    latency_ms: float = math.nan
    value: float = math.nan            # the evaluator's value (accuracy, Zen-Score, ...)
    dimension: str = ""
    stages: tuple[int, ...] = ()
    request: EvalRequest | None = None  # its evaluation, with its parent's and the step
    eval_request: EvalRequest | None = None  # what gave `value`: `request`, or with more seeds
    ci: tuple[float, float] | None = None   # the interval decisions used (search.racing)
    n: int = 1                          # seeds (or repeats) the value is the mean of
    decision: str = ""                  # the chosen row: separated, tie at cap, ...

    def __post_init__(self) -> None:
        if self.eval_request is None:
            self.eval_request = self.request

    def spread(self) -> dict:
        """value, its interval and n, for result files."""
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "n": self.n}

    @property
    def label(self) -> str:
        """'w3+6': width step on stages 3 and 6; 'd5': depth step on stage 5; 'baseline'."""
        if not self.dimension:
            return "baseline"
        return f"{self.dimension[0]}{'+'.join(map(str, self.stages))}"

    @property
    def stage_label(self) -> str:
        return "+".join(map(str, self.stages))

    def step(self, base: NetworkSpec, dimension: str, stages: tuple[int, ...],
             cache: "Cache") -> "Node":
        spec, widths = rbis_step(self.spec, base, self.width_steps, dimension, stages)
        depths = list(self.depth_steps)
        if dimension == DEPTH:
            for i in stages:
                depths[i] += 1
        spec = replace(spec, name=f"{base.name}-rbis",
                       source=f"RBIS-scaled from {base.name} ({base.fingerprint})")
        how = Step(dimension, tuple(stages))
        request = cache.request(spec, self.request.resolution, self.request, how)
        return Node(spec, widths, tuple(depths), dimension=dimension, stages=tuple(stages),
                    request=request)


def score(acc: float, lat: float, parent_acc: float, parent_lat: float) -> tuple[bool, float]:
    """(preferred, score). Preferred: no slower and no loss; score = inf for those.

    `acc` is whatever the evaluator measures (an accuracy or a proxy score): only differences
    enter, so a log-scale score such as Zen-Score works unchanged."""
    if lat <= parent_lat:
        return (True, math.inf) if acc >= parent_acc else (False, 0.0)
    return False, max(acc - parent_acc, 0.0) / (lat - parent_lat)


def choose(cands: list[Node], parent: Node) -> int | None:
    """Index (lexicographic position) of the chosen candidate among evaluated eligible ones."""
    best, best_key = None, None
    for j, c in enumerate(cands):
        if math.isnan(c.value):
            continue
        preferred, s = score(c.value, c.latency_ms, parent.value, parent.latency_ms)
        key = (0, -c.value, c.latency_ms, j) if preferred else (1, -s, c.latency_ms, j)
        if best_key is None or key < best_key:
            best, best_key = j, key
    return best


@dataclass
class ResolutionResult:
    resolution: int
    feasible: bool
    reason: str
    path: list[Node] = field(default_factory=list)
    iterations: int = 0
    decisions: list[dict] = field(default_factory=list)   # one per iteration run (racing)

    @property
    def best(self) -> Node | None:
        return self.path[-1] if self.path else None

    @property
    def verdict(self) -> str:
        """The best network against the baseline's interval at this resolution: win, tie
        (inside the baseline's noise), below, or 'no interval'; 'baseline' when no step was
        taken."""
        if len(self.path) < 2:
            return "baseline"
        return verdict(self.best.value, self.path[0].ci)

    def to_dict(self, metric: str = "accuracy") -> dict:
        d = {"resolution": self.resolution, "feasible": self.feasible, "reason": self.reason,
             "iterations": self.iterations}
        if self.feasible and self.best is not None:
            b = self.best
            d.update({metric: b.value}, latency_ms=b.latency_ms,
                     fingerprint=b.spec.fingerprint, widths=list(b.spec.widths),
                     depths=list(b.spec.depths), width_steps=list(b.width_steps),
                     depth_steps=list(b.depth_steps), network=b.spec.to_dict(),
                     ci=b.spread()["ci"], n=b.n, baseline=self.path[0].spread(),
                     verdict=self.verdict, decisions=self.decisions,
                     path=[{"step": n.label, "latency_ms": n.latency_ms, metric: n.value,
                            "ci": n.spread()["ci"], "n": n.n} for n in self.path])
        return d


@dataclass
class SearchResult:
    base: NetworkSpec
    budget_ms: float
    resolutions: list[int]
    stages: tuple[int, ...]
    k: int
    per_resolution: list[ResolutionResult]
    trace: list[dict]
    cache: Cache
    winner: ResolutionResult | None = None
    max_seeds: int = DEFAULT_MAX_SEEDS

    def provenance(self, r: "ResolutionResult") -> NetworkSpec:
        """The network of `r` named and sourced as what it is: scaled, from what, by what."""
        b, c = r.best, self.cache
        return replace(b.spec, name=f"{self.base.name}-rbis-{self.budget_ms:g}ms-{r.resolution}",
                       source=f"RBIS: {self.base.name} ({self.base.fingerprint}) scaled to "
                              f"{self.budget_ms:g} ms at {r.resolution} px in {r.iterations} "
                              f"steps; latency {c.source.describe()}; accuracy "
                              f"{c.evaluator.describe()}")

    def to_dict(self) -> dict:
        w = self.provenance(self.winner) if self.winner else None
        c = self.cache
        ev = c.evaluator
        metric = ev.metric
        per_res = []
        for r in self.per_resolution:
            d = r.to_dict(metric)
            if "network" in d:
                d["network"] = self.provenance(r).to_dict()
            per_res.append(d)
        return {
            "baseline": self.base.name, "baseline_fingerprint": self.base.fingerprint,
            "budget_ms": self.budget_ms, "resolutions": self.resolutions,
            "stages": list(self.stages), "candidates_k": self.k,
            "latency_source": c.source.describe(), "device": c.source.device_label(),
            "date": date.today().isoformat(), "evaluator": ev.describe(),
            "evaluator_key": ev.key(), "metric": metric, "metric_label": ev.metric_label,
            "accuracy_synthetic": bool(getattr(ev, "synthetic", "")),
            "resolution": self.winner.resolution if self.winner else None,
            "network": w.to_dict() if w else None,
            metric: self.winner.best.value if w else None,
            "ci": self.winner.best.spread()["ci"] if w else None,
            "n": self.winner.best.n if w else None,
            "baseline_at_winner_resolution": self.winner.path[0].spread() if w else None,
            "verdict": self.winner.verdict if w else None,
            "latency_ms": self.winner.best.latency_ms if w else None,
            "racing": {"max_seeds": self.max_seeds, "seeds_option": ev.seeds is not None,
                       "seed_noise": _noise(c)},
            "per_resolution": per_res,
            "counts": {"latency_reads": c.latency_calls, "evaluations": c.evaluations,
                       "latency_cache_hits": c.latency_hits, "value_cache_hits": c.value_hits,
                       "accuracy_cache_hits": c.store_hits,
                       "distinct_latencies": len(c.latency),
                       "distinct_values": len(c.values), "resumed": c.resumed},
        }


def _noise(cache: Cache) -> dict | None:
    noise = cache.noise() if cache.evaluator.seeds is not None else None
    return {"sd": noise[0], "dof": noise[1]} if noise else None


def _row(r: int, it: int | str, dim: str, node: Node, phase: str, kept: bool, eligible: bool,
         parent: Node | None, chosen: bool, metric: str = "accuracy",
         decision: str = "") -> dict:
    preferred, s = (False, math.nan)
    if parent is not None and not math.isnan(node.value):
        preferred, s = score(node.value, node.latency_ms, parent.value, parent.latency_ms)
    return {"resolution": r, "iteration": it, "dimension": dim, "stages": node.stage_label,
            "latency_ms": node.latency_ms,
            metric: "" if math.isnan(node.value) else node.value,
            "score": "" if math.isnan(s) else s, "chosen": chosen, "phase": phase, "kept": kept,
            "eligible": eligible, "preferred": preferred,
            "parent_latency_ms": parent.latency_ms if parent else "",
            f"parent_{metric}": parent.value if parent else "",
            "fingerprint": node.spec.fingerprint,
            "widths": " ".join(map(str, node.spec.widths)),
            "depths": " ".join(map(str, node.spec.depths)),
            f"{metric}_ci_low": node.ci[0] if node.ci else "",
            f"{metric}_ci_high": node.ci[1] if node.ci else "",
            "n": "" if math.isnan(node.value) else node.n, "decision": decision}


def search_resolution(base: NetworkSpec, r: int, budget_ms: float, stages: tuple[int, ...],
                      k: int, cache: Cache, trace: list[dict], max_iterations: int = 200,
                      log: Callable[[str], None] | None = None,
                      max_seeds: int = DEFAULT_MAX_SEEDS) -> ResolutionResult:
    """RBIS at one resolution; appends its rows to `trace` as it goes. The baseline is
    evaluated with `max_seeds` seeds where the evaluator has seeds, so that its spread is
    known before the first decision and beside the result."""
    n = len(base.stages)
    spec = base.with_resolution(r)
    parent = Node(spec, (0,) * n, (0,) * n, request=cache.request(spec, r))
    metric, unit = cache.evaluator.metric, cache.evaluator.unit
    [parent.latency_ms] = cache.latencies([(parent.spec, r)])
    if cache.progress is not None:
        cache.progress.start_resolution(r, parent.latency_ms)
    cache.where = f"r={r}, baseline"
    feasible = parent.latency_ms <= budget_ms
    if not feasible:
        trace.append(_row(r, -1, "baseline", parent, "baseline", False, False, None, False,
                          metric))
        return ResolutionResult(r, False, f"baseline latency {parent.latency_ms:.3f} ms exceeds "
                                          f"the budget {budget_ms:g} ms")
    trace.append(_row(r, -1, "baseline", parent, "baseline", False, True, None, True, metric))
    seeds = cache.evaluator.seeds
    if seeds is not None and max_seeds > seeds:
        parent.eval_request = cache.seeded(parent.request, max_seeds)
    [parent.value] = cache.evaluate([parent.eval_request])
    update_interval(cache, parent)
    trace[-1] = _row(r, -1, "baseline", parent, "baseline", False, True, None, True, metric)
    result = ResolutionResult(r, True, "", [parent])
    pairs = list(combinations_with_replacement(stages, 2))
    singles = [(a,) for a in stages]
    for it in range(max_iterations):
        dim = WIDTH if it % 2 == 0 else DEPTH
        step = _Iteration(base, r, it, dim, budget_ms, cache, trace, parent, max_seeds,
                          result.decisions)
        chosen = step.run(pairs, "pair", k)
        if chosen is not None:
            if cache.progress is not None:
                cache.progress.step(r, chosen.latency_ms, it + 1)
            if log:
                log(f"r={r} iteration {it} {dim}: stages {chosen.stage_label} -> "
                    f"{chosen.latency_ms:.2f} ms, {metric} {chosen.value:.3f}{unit}"
                    f"{_spread_text(chosen)}; {chosen.decision}")
            parent = chosen
            result.path.append(parent)
            result.iterations = it + 1
            continue
        # Last iteration: no pair fits, try one stage at a time (same dimension, same rules,
        # every single evaluated).
        chosen = step.run(singles, "single", None)
        if chosen is not None:
            result.path.append(chosen)
            result.iterations = it + 1
            result.reason = f"budget reached; last step on one stage ({dim} {chosen.stage_label})"
        else:
            result.reason = "budget reached"
        if cache.progress is not None:
            cache.progress.finish_resolution(r, result.iterations)
        if log:
            log(f"r={r} stops after {result.iterations} step(s): {result.reason}")
        return result
    result.reason = f"stopped at the iteration cap {max_iterations}"
    return result


@dataclass
class _Iteration:
    """One RBIS iteration from `parent` along `dimension`: candidates, latencies, the kept ones
    evaluated, the choice; the pair phase and the single-stage fallback are two `run`s."""

    base: NetworkSpec
    r: int
    it: int
    dimension: str
    budget_ms: float
    cache: Cache
    trace: list[dict]
    parent: Node
    max_seeds: int = DEFAULT_MAX_SEEDS
    decisions: list[dict] = field(default_factory=list)

    def run(self, groups: Sequence[tuple[int, ...]], phase: str, k: int | None) -> Node | None:
        """Candidates for each stage group (minus steps that leave the network unchanged); the
        k lowest-latency ones (all when k is None) within the budget are evaluated; returns the
        chosen candidate or None. The trace gets every candidate's row before evaluation."""
        parent, r, budget = self.parent, self.r, self.budget_ms
        cands = [c for c in (parent.step(self.base, self.dimension, g, self.cache)
                             for g in groups)
                 if c.spec.fingerprint != parent.spec.fingerprint]
        for c, lat in zip(cands, self.cache.latencies([(c.spec, r) for c in cands])):
            c.latency_ms = lat
        if self.it == 0 and cands and self.cache.progress is not None:
            self.cache.progress.first_candidates(r, [c.latency_ms for c in cands])
        self.cache.where = f"r={r}, iteration {self.it}"
        order = sorted(range(len(cands)), key=lambda j: (cands[j].latency_ms, j))
        kept = set(order if k is None else order[:k])

        metric = self.cache.evaluator.metric

        def rows(decision: Decision | None) -> list[dict]:
            pick = decision.leader if decision else None
            return [_row(r, self.it, self.dimension, c, phase, j in kept, c.latency_ms <= budget,
                         parent, j == pick, metric, decision_text(decision, j, c))
                    for j, c in enumerate(cands)]

        start = len(self.trace)
        self.trace.extend(rows(None))   # latencies are in the trace before evaluation starts
        to_eval = [j for j in sorted(kept) if cands[j].latency_ms <= budget]
        for j, v in zip(to_eval, self.cache.evaluate([cands[j].request for j in to_eval])):
            cands[j].value = v
        decision = race(cands, parent, self.cache, choose, self.max_seeds)
        self.trace[start:] = rows(decision)
        self.decisions.append({"iteration": self.it, "phase": phase,
                               **decision.to_dict([c.label for c in cands])})
        if decision.leader is None:
            return None
        chosen = cands[decision.leader]
        chosen.decision = decision_text(decision, decision.leader, chosen)
        return chosen


def _spread_text(node: Node) -> str:
    if node.ci is None:
        return ""
    return f" [{node.ci[0]:.3f}, {node.ci[1]:.3f}], n={node.n}"



def pick_winner(per_res: Sequence[ResolutionResult]) -> ResolutionResult | None:
    """Highest value; ties: lower latency, then lower resolution. None if none feasible."""
    feasible = [p for p in per_res if p.feasible]
    if not feasible:
        return None
    return min(feasible, key=lambda p: (-p.best.value, p.best.latency_ms, p.resolution))


def run_rbis(base: NetworkSpec, budget_ms: float, resolutions: Sequence[int],
             source: LatencySource, evaluator: Evaluator, stages: Sequence[int] | None = None,
             k: int = DEFAULT_K, out_dir: str | Path | None = None, max_iterations: int = 200,
             log: Callable[[str], None] | None = None,
             accuracy_cache: AccuracyCache | None = None,
             run: Runner = evaluate_locally,
             max_seeds: int = DEFAULT_MAX_SEEDS) -> SearchResult:
    """Run RBIS at every resolution; write DIR/state.json, trace.csv, result.json if out_dir.

    `accuracy_cache`: the store's cache of evaluations, consulted before the evaluator and
    given every new evaluation as it finishes; `run`: where evaluations run (`Cache`);
    `max_seeds`: the cap of a race (`search.racing`) for an evaluator with seeds.

    Raises SearchError when no resolution is feasible (after writing the trace), and passes
    on the source's and evaluator's errors (after writing the trace).
    """
    if not budget_ms > 0 or not math.isfinite(budget_ms):
        raise SearchError(f"budget must be a positive number of ms, got {budget_ms}")
    if k < 1:
        raise SearchError(f"--candidates must be at least 1, got {k}")
    if max_seeds < 1:
        raise SearchError(f"--max-seeds must be at least 1, got {max_seeds}")
    resolutions = sorted({check_resolution(r) for r in resolutions})
    if not resolutions:
        raise SearchError("no resolutions to search")
    stages = check_stages(base, stages)
    out = Path(out_dir) if out_dir is not None else None
    cache = Cache(source, evaluator, out / "state.json" if out else None, accuracy_cache, run)
    if log:
        from latency_lab.search.progress import SearchProgress

        cache.progress = SearchProgress(log, float(budget_ms), len(resolutions), k, len(stages),
                                        evaluator.describe())
        if cache.resumed:
            log(f"resuming {cache.path}: {len(cache.latency)} latencies and {len(cache.values)} "
                f"{evaluator.metric} values kept from the earlier run; only what they lack is "
                f"measured or evaluated")
    metric = evaluator.metric
    trace: list[dict] = []
    per_res: list[ResolutionResult] = []
    result = SearchResult(base, float(budget_ms), list(resolutions), stages, k, per_res, trace,
                          cache, max_seeds=max_seeds)
    try:
        for r in resolutions:
            per_res.append(search_resolution(base, r, budget_ms, stages, k, cache, trace,
                                             max_iterations, log, max_seeds))
            if out and not (source.instant and evaluator.instant):   # else once, at the end
                write_trace(trace, out / "trace.csv", metric, cache, budget_ms)
        for pr in per_res:      # the verdicts use the seed noise as finally pooled
            for node in pr.path:
                update_interval(cache, node)
        result.winner = pick_winner(per_res)
        feasible = result.winner is not None
        if out:
            write_atomic(out / "result.json", json.dumps(result.to_dict(), indent=2))
        if not feasible:
            lat, r = min((row["latency_ms"], row["resolution"]) for row in trace)
            raise SearchError(f"budget {budget_ms:g} ms is below the baseline's latency at every "
                              f"resolution (fastest: {lat:.3f} ms at {r})")
    finally:
        cache.flush()
        mark_origins(trace, cache, budget_ms)
        if out:
            write_trace(trace, out / "trace.csv", metric, cache, budget_ms)
    return result


__all__ = ["run_rbis", "pick_winner", "search_resolution", "SearchResult", "ResolutionResult",
           "SearchError", "Cache", "Node", "score", "choose", "check_stages", "default_stages",
           "write_trace", "TRACE_COLUMNS", "trace_columns", "DEFAULT_K", "DEFAULT_MAX_SEEDS",
           "STATE_VERSION", "budget_test", "PROVENANCE_COLUMNS"]
