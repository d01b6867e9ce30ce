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
- an iteration cap (`max_iterations`, default 200) stops a latency source that never grows.

Every (network, resolution) is measured and evaluated at most once: values are cached by
(fingerprint, resolution) in `DIR/state.json`, written atomically after every latency read and
every evaluator batch. A rerun with the same sources replays the (deterministic) search from
that cache, so an interrupted search resumes without repeating work and writes the same trace.
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

import csv
import json
import math
import time
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Callable, Sequence

from latency_lab.errors import UserError
from latency_lab.fileio import parse_json, read_text, write_atomic
from latency_lab.network.scaling import default_stages
from latency_lab.network.spec import NetworkSpec, check_resolution
from latency_lab.search.accuracy_cache import AccuracyCache, lineage_id
from latency_lab.search.evaluators import EvalRequest, Evaluator, Runner, Step, evaluate_locally
from latency_lab.search.scaling import DEPTH, WIDTH, rbis_step
from latency_lab.search.sources import LatencySource

STATE_VERSION = 2
DEFAULT_K = 10          # the thesis evaluated 10 candidates per iteration (one per TPU)
TRACE_COLUMNS = ["resolution", "iteration", "dimension", "stages", "latency_ms", "accuracy",
                 "score", "chosen", "phase", "kept", "eligible", "preferred",
                 "parent_latency_ms", "parent_accuracy", "fingerprint", "widths", "depths",
                 "latency_from", "latency_provenance", "latency_ci_low_ms",
                 "latency_ci_high_ms", "budget_test", "scale_factor", "scale_batch",
                 "latency_note"]
# A point's provenance as the source said it (source_base.LatencySource.provenance), and the
# trace column each field goes to.
PROVENANCE_COLUMNS = {"provenance": "latency_provenance", "ci_low_ms": "latency_ci_low_ms",
                      "ci_high_ms": "latency_ci_high_ms", "scale_factor": "scale_factor",
                      "scale_batch": "scale_batch", "note": "latency_note"}


class SearchError(UserError):
    """A search that cannot go on (bad input, unusable state); the trace so far is kept."""


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


# -- cache and its file -------------------------------------------------------------------------
class Cache:
    """Latencies and evaluator values by (fingerprint, resolution), persisted to `path` if given.

    Values come, in this order, from this search's state, from the store's accuracy cache
    (`accuracy_cache`, shared by every search; skipped for values recorded before this run
    with --reevaluate), or from the evaluator; each new one is recorded in both as it
    finishes. For an evaluator that depends on the parent (`uses_parent`) the state's key
    also holds the lineage, as the store's does.

    The evaluations an iteration still needs are handed to `run` together (default:
    `evaluate_locally`, one after the other in this process); `run` yields (index, result)
    in any order as they finish, each is recorded at once, and the caller gets the values
    when all are in, so where they ran cannot change the search's decisions.
    """

    def __init__(self, source: LatencySource, evaluator: Evaluator, path: Path | None = None,
                 accuracy_cache: AccuracyCache | None = None, run: Runner = evaluate_locally):
        self.source, self.evaluator, self.path = source, evaluator, path
        self.accuracy_cache, self.run = accuracy_cache, run
        self.latency: dict[str, float] = {}
        self.values: dict[str, float] = {}
        self.origin: dict[str, str] = {}    # which source answered (a chain has several)
        self.provenance: dict[str, dict] = {}   # how (source_base.LatencySource.provenance)
        self.latency_calls = self.evaluations = 0     # made by this process
        self.latency_hits = self.value_hits = self.store_hits = 0
        self.resumed = False
        self.dirty = False      # results not yet in state.json (instant ones: `save`)
        self.progress = None    # a search.progress.SearchProgress, told of every evaluation
        self.where = ""         # what is being evaluated now ("r=224, iteration 3"), for it
        if path is not None and path.exists():
            self._load()

    @staticmethod
    def key(spec: NetworkSpec, resolution: int) -> str:
        return f"{spec.fingerprint}@{int(resolution)}"

    def request(self, spec: NetworkSpec, resolution: int, parent: EvalRequest | None = None,
                step: Step | None = None) -> EvalRequest:
        return self.evaluator.request(spec, resolution, parent, step)

    def _value_key(self, req: EvalRequest) -> str:
        lineage = lineage_id(self.evaluator, req)
        return self.key(req.spec, req.resolution) + (f"#{lineage}" if lineage else "")

    def _ids(self) -> dict[str, str]:
        return {"latency_source": self.source.describe(), "evaluator": self.evaluator.describe()}

    def _load(self) -> None:
        try:
            d = parse_json(read_text(self.path, "search state"), "search state")
            if d.get("version") not in (1, STATE_VERSION):
                raise ValueError(f"version {d.get('version')}")
            latency = {str(k): float(v) for k, v in d["latency_ms"].items()}
            # version 1 called the evaluator's values "accuracy" whatever they were
            values = {str(k): float(v) for k, v in d["values" if "values" in d else
                                                    "accuracy"].items()}
            bad = next(((k, v) for k, v in latency.items() if not (math.isfinite(v) and v > 0)),
                       None)   # a negative latency was resumed from (issue 25)
            if bad:
                raise ValueError(f"latency {bad[1]!r} ms for {bad[0]}: not a finite positive "
                                 "number")
            bad = next(((k, v) for k, v in values.items() if not math.isfinite(v)), None)
            if bad:
                raise ValueError(f"value {bad[1]!r} for {bad[0]}: not a finite number")
        except (UserError, ValueError, KeyError, TypeError, AttributeError,
                OverflowError) as exc:
            raise SearchError(f"search state {self.path} is unreadable ({exc}); delete it to "
                              f"start over") from None
        for what, mine in self._ids().items():
            if d.get(what) != mine:
                raise SearchError(f"search state {self.path} was made with {what} "
                                  f"{d.get(what)!r}, not {mine!r}; use another --out or delete it")
        self.latency, self.values, self.resumed = latency, values, True
        self.origin = {str(k): str(v) for k, v in d.get("latency_from", {}).items()}
        self.provenance = {str(k): dict(v) for k, v in d.get("latency_provenance", {}).items()}
        if hasattr(self.source, "restore_scale"):
            self.source.restore_scale(d.get("latency_scale"))

    def save(self, instant: bool = False) -> None:
        """Write state.json whole. After `instant` work (a replayed latency, a formula's value:
        microseconds, redone in microseconds) it is only marked unsaved, and written by the next
        costly result or `flush`: the README's offline search saved it 280 times, 0.2 of its
        2.7 CPU-seconds."""
        if self.path is None:
            return
        if instant:
            self.dirty = True
            return
        self.dirty = False
        write_atomic(self.path, json.dumps({"version": STATE_VERSION, **self._ids(),
                                            "metric": self.evaluator.metric,
                                            "latency_ms": self.latency,
                                            "values": self.values,
                                            "latency_from": self.origin,
                                            "latency_provenance": self.provenance,
                                            "latency_scale": getattr(
                                                self.source, "scale_state", lambda: None)()},
                                           indent=1, sort_keys=True, default=_plain))

    def flush(self) -> None:
        if self.dirty:
            self.save()

    def latencies(self, points: Sequence[tuple[NetworkSpec, int]]) -> list[float]:
        todo: dict[str, tuple[NetworkSpec, int]] = {}
        seen = getattr(self.source, "seen", None)   # a chain keeps predictions monotone
        for spec, res in points:
            k = self.key(spec, res)
            if k in self.latency or k in todo:
                self.latency_hits += 1
                if seen is not None and k in self.latency:
                    seen(spec, res, self.latency[k])
            else:
                todo[k] = (spec, res)
        if todo and getattr(self.source, "batched", False):
            values = self.source.latency_many(list(todo.values()))
            self.latency_calls += len(values)
            self.latency.update(zip(todo, (float(v) for v in values)))
            for k, p in todo.items():
                self._note(k, p)
            self.save(self.source.instant)
        else:
            for k, (spec, res) in todo.items():
                self.latency[k] = float(self.source.latency_ms(spec, res))
                self._note(k, (spec, res))
                self.latency_calls += 1
                self.save(self.source.instant)
        return [self.latency[self.key(s, r)] for s, r in points]

    def _note(self, k: str, point: tuple[NetworkSpec, int]) -> None:
        self.origin[k] = self.source.origin(*point)
        self.provenance[k] = {f: (None if isinstance(v, float) and not math.isfinite(v)
                                  else v)
                              for f, v in self.source.provenance(*point).items()}

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        """Values of the requests, in order; each new evaluation saved as it finishes."""
        todo: dict[str, EvalRequest] = {}
        for req in requests:
            k = self._value_key(req)
            if k in self.values or k in todo:
                self.value_hits += 1
            else:
                todo[k] = req
        missing: list[tuple[str, EvalRequest]] = []
        for k, req in todo.items():
            cached = self.accuracy_cache.lookup(req) if self.accuracy_cache else None
            if cached is None:
                missing.append((k, req))
                continue
            self.store_hits += 1
            self.values[k] = cached.value
        if len(missing) < len(todo):
            self.save(instant=True)     # a store lookup, redone in microseconds
        if self.progress is not None:
            self.progress.had(len(requests) - len(missing))
        clock = time.monotonic()
        for i, result in self.run(self.evaluator, [req for _, req in missing]):
            if self.progress is not None:   # the time since the last result came back
                now = time.monotonic()
                self.progress.evaluated(now - clock, self.where)
                clock = now
            k, req = missing[i]
            self.values[k] = self.evaluator.check(req, result.value)
            self.evaluations += 1
            if self.accuracy_cache:
                self.accuracy_cache.record(req, result)
            self.save(self.evaluator.instant)
        return [self.values[self._value_key(req)] for req in requests]

    def value_of(self, spec: NetworkSpec, resolution: int) -> float:
        """The value of a network that is no search step (a baseline family's member)."""
        return self.evaluate([self.request(spec, resolution)])[0]


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

    @property
    def best(self) -> Node | None:
        return self.path[-1] if self.path else None

    def to_dict(self, metric: str = "accuracy") -> dict:
        d = {"resolution": self.resolution, "feasible": self.feasible, "reason": self.reason,
             "iterations": self.iterations}
        if self.feasible and self.best is not None:
            b = self.best
            d.update({metric: b.value}, latency_ms=b.latency_ms,
                     fingerprint=b.spec.fingerprint, widths=list(b.spec.widths),
                     depths=list(b.spec.depths), width_steps=list(b.width_steps),
                     depth_steps=list(b.depth_steps), network=b.spec.to_dict(),
                     path=[{"step": n.label, "latency_ms": n.latency_ms, metric: n.value}
                           for n in self.path])
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
            "latency_ms": self.winner.best.latency_ms if w else None,
            "per_resolution": per_res,
            "counts": {"latency_reads": c.latency_calls, "evaluations": c.evaluations,
                       "latency_cache_hits": c.latency_hits, "value_cache_hits": c.value_hits,
                       "accuracy_cache_hits": c.store_hits,
                       "distinct_latencies": len(c.latency),
                       "distinct_values": len(c.values), "resumed": c.resumed},
        }


def trace_columns(metric: str = "accuracy") -> list[str]:
    """TRACE_COLUMNS with the evaluator's value and its parent's named after its metric."""
    names = {"accuracy": metric, "parent_accuracy": f"parent_{metric}"}
    return [names.get(c, c) for c in TRACE_COLUMNS]


def _row(r: int, it: int | str, dim: str, node: Node, phase: str, kept: bool, eligible: bool,
         parent: Node | None, chosen: bool, metric: str = "accuracy") -> dict:
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
            "depths": " ".join(map(str, node.spec.depths))}


def _plain(x):
    """JSON for what a provenance may hold beyond plain types (numpy floats)."""
    return float(x)


def budget_test(low: float, high: float, budget_ms: float | None) -> str:
    """`under`, `over` or `tie` (the 95% CI straddles the budget); '' where unknown."""
    if budget_ms is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return "under" if high <= budget_ms else "over" if low > budget_ms else "tie"


def mark_origins(rows: list[dict], cache: "Cache", budget_ms: float | None = None) -> None:
    """Set each trace row's `latency_from` (which latency source answered it), its
    provenance columns and, given the budget, its `budget_test`."""
    for row in rows:
        k = f"{row['fingerprint']}@{row['resolution']}"
        row["latency_from"] = cache.origin.get(k, "")
        p = cache.provenance.get(k, {})
        for field_, column in PROVENANCE_COLUMNS.items():
            v = p.get(field_)
            row[column] = "" if v is None else v
        low, high = (float(p.get("ci_low_ms") or math.nan), float(p.get("ci_high_ms") or math.nan))
        row["budget_test"] = budget_test(low, high, budget_ms)


def write_trace(rows: list[dict], path: Path, metric: str = "accuracy",
                cache: "Cache | None" = None, budget_ms: float | None = None) -> None:
    """trace.csv; with `cache`, each row says which latency source answered it and how."""
    import io

    if cache is not None:
        mark_origins(rows, cache, budget_ms)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=trace_columns(metric), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)   # floats at full precision: the trace re-derives every decision
    write_atomic(path, buf.getvalue())


def search_resolution(base: NetworkSpec, r: int, budget_ms: float, stages: tuple[int, ...],
                      k: int, cache: Cache, trace: list[dict], max_iterations: int = 200,
                      log: Callable[[str], None] | None = None) -> ResolutionResult:
    """RBIS at one resolution; appends its rows to `trace` as it goes."""
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
    [parent.value] = cache.evaluate([parent.request])
    trace[-1] = _row(r, -1, "baseline", parent, "baseline", False, True, None, True, metric)
    result = ResolutionResult(r, True, "", [parent])
    pairs = list(combinations_with_replacement(stages, 2))
    singles = [(a,) for a in stages]
    for it in range(max_iterations):
        dim = WIDTH if it % 2 == 0 else DEPTH
        step = _Iteration(base, r, it, dim, budget_ms, cache, trace, parent)
        chosen = step.run(pairs, "pair", k)
        if chosen is not None:
            if cache.progress is not None:
                cache.progress.step(r, chosen.latency_ms, it + 1)
            if log:
                log(f"r={r} iteration {it} {dim}: stages {chosen.stage_label} -> "
                    f"{chosen.latency_ms:.2f} ms, {metric} {chosen.value:.3f}{unit}")
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

        def rows(pick: int | None) -> list[dict]:
            return [_row(r, self.it, self.dimension, c, phase, j in kept, c.latency_ms <= budget,
                         parent, j == pick, metric) for j, c in enumerate(cands)]

        start = len(self.trace)
        self.trace.extend(rows(None))   # latencies are in the trace before evaluation starts
        to_eval = [j for j in sorted(kept) if cands[j].latency_ms <= budget]
        for j, v in zip(to_eval, self.cache.evaluate([cands[j].request for j in to_eval])):
            cands[j].value = v
        pick = choose(cands, parent)
        self.trace[start:] = rows(pick)
        return None if pick is None else cands[pick]


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
             run: Runner = evaluate_locally) -> SearchResult:
    """Run RBIS at every resolution; write DIR/state.json, trace.csv, result.json if out_dir.

    `accuracy_cache`: the store's cache of evaluations, consulted before the evaluator and
    given every new evaluation as it finishes; `run`: where evaluations run (`Cache`).

    Raises SearchError when no resolution is feasible (after writing the trace), and passes
    on the source's and evaluator's errors (after writing the trace).
    """
    if not budget_ms > 0 or not math.isfinite(budget_ms):
        raise SearchError(f"budget must be a positive number of ms, got {budget_ms}")
    if k < 1:
        raise SearchError(f"--candidates must be at least 1, got {k}")
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
                          cache)
    try:
        for r in resolutions:
            per_res.append(search_resolution(base, r, budget_ms, stages, k, cache, trace,
                                             max_iterations, log))
            if out and not (source.instant and evaluator.instant):   # else once, at the end
                write_trace(trace, out / "trace.csv", metric, cache, budget_ms)
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


__all__ = ["run_rbis", "pick_winner", "search_resolution", "SearchResult", "ResolutionResult", "SearchError",
           "Cache", "Node", "score", "choose", "check_stages", "default_stages", "write_trace",
           "TRACE_COLUMNS", "trace_columns", "DEFAULT_K", "budget_test", "PROVENANCE_COLUMNS"]
