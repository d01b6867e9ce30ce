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
highest accuracy (ties: lower latency, then lower resolution).

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
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Callable, Sequence

from latency_lab.errors import UserError
from latency_lab.fileio import parse_json, read_text, write_atomic
from latency_lab.spec import NetworkSpec, check_resolution
from latency_lab.search.evaluators import Evaluator
from latency_lab.search.scaling import DEPTH, WIDTH, rbis_step
from latency_lab.search.sources import LatencySource, SourceError

STATE_VERSION = 1
DEFAULT_K = 10          # the thesis evaluated 10 candidates per iteration (one per TPU)
DEFAULT_N_STAGES = 5    # the thesis scales five body stages (C(6, 2) = 15 pairs per iteration)
TRACE_COLUMNS = ["resolution", "iteration", "dimension", "stages", "latency_ms", "accuracy",
                 "score", "chosen", "phase", "kept", "eligible", "preferred",
                 "parent_latency_ms", "parent_accuracy", "fingerprint", "widths", "depths"]


class SearchError(UserError):
    """A search that cannot go on (bad input, unusable state); the trace so far is kept."""


def default_stages(spec: NetworkSpec) -> tuple[int, ...]:
    n = len(spec.stages)
    return tuple(range(max(0, n - DEFAULT_N_STAGES), n))


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
    """Latencies and accuracies by (fingerprint, resolution), persisted to `path` if given."""

    def __init__(self, source: LatencySource, evaluator: Evaluator, path: Path | None = None):
        self.source, self.evaluator, self.path = source, evaluator, path
        self.latency: dict[str, float] = {}
        self.accuracy: dict[str, float] = {}
        self.latency_calls = self.accuracy_calls = 0     # made by this process
        self.latency_hits = self.accuracy_hits = 0
        self.resumed = False
        if path is not None and path.exists():
            self._load()

    @staticmethod
    def key(spec: NetworkSpec, resolution: int) -> str:
        return f"{spec.fingerprint}@{int(resolution)}"

    def _ids(self) -> dict[str, str]:
        return {"latency_source": self.source.describe(), "evaluator": self.evaluator.describe()}

    def _load(self) -> None:
        try:
            d = parse_json(read_text(self.path, "search state"), "search state")
            if d.get("version") != STATE_VERSION:
                raise ValueError(f"version {d.get('version')}")
            latency = {str(k): float(v) for k, v in d["latency_ms"].items()}
            accuracy = {str(k): float(v) for k, v in d["accuracy"].items()}
        except (UserError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SearchError(f"search state {self.path} is unreadable ({exc}); delete it to "
                              f"start over") from None
        for what, mine in self._ids().items():
            if d.get(what) != mine:
                raise SearchError(f"search state {self.path} was made with {what} "
                                  f"{d.get(what)!r}, not {mine!r}; use another --out or delete it")
        self.latency, self.accuracy, self.resumed = latency, accuracy, True

    def save(self) -> None:
        if self.path is None:
            return
        write_atomic(self.path, json.dumps({"version": STATE_VERSION, **self._ids(),
                                            "latency_ms": self.latency,
                                            "accuracy": self.accuracy}, indent=1, sort_keys=True))

    def latencies(self, points: Sequence[tuple[NetworkSpec, int]]) -> list[float]:
        todo: dict[str, tuple[NetworkSpec, int]] = {}
        for spec, res in points:
            k = self.key(spec, res)
            if k in self.latency or k in todo:
                self.latency_hits += 1
            else:
                todo[k] = (spec, res)
        if todo and getattr(self.source, "batched", False):
            values = self.source.latency_many(list(todo.values()))
            self.latency_calls += len(values)
            self.latency.update(zip(todo, (float(v) for v in values)))
            self.save()
        else:
            for k, (spec, res) in todo.items():
                self.latency[k] = float(self.source.latency_ms(spec, res))
                self.latency_calls += 1
                self.save()
        return [self.latency[self.key(s, r)] for s, r in points]

    def accuracies(self, points: Sequence[tuple[NetworkSpec, int]]) -> list[float]:
        todo: dict[str, tuple[NetworkSpec, int]] = {}
        for spec, res in points:
            k = self.key(spec, res)
            if k in self.accuracy or k in todo:
                self.accuracy_hits += 1
            else:
                todo[k] = (spec, res)
        keys = list(todo)
        size = self.evaluator.batch_size or max(1, len(keys))
        for start in range(0, len(keys), size):
            chunk = keys[start:start + size]
            values = self.evaluator.evaluate([todo[k] for k in chunk])
            if len(values) != len(chunk):
                raise SourceError(f"evaluator {self.evaluator.describe()} returned "
                                  f"{len(values)} accuracies for {len(chunk)} networks")
            for k, v in zip(chunk, values):
                spec, res = todo[k]
                if not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise SourceError(f"evaluator {self.evaluator.describe()} returned {v!r} for "
                                      f"{spec.name} ({spec.fingerprint}) at {res}")
                self.accuracy[k] = float(v)
            self.accuracy_calls += len(chunk)
            self.save()
        return [self.accuracy[self.key(s, r)] for s, r in points]


# -- the search ---------------------------------------------------------------------------------
@dataclass
class Node:
    """A network on the search path: its per-stage width-step counts and depth steps, and the
    step that made it from its parent (`dimension` and `stages`; empty for the baseline)."""

    spec: NetworkSpec
    width_steps: tuple[int, ...]
    depth_steps: tuple[int, ...]
    latency_ms: float = math.nan
    accuracy: float = math.nan
    dimension: str = ""
    stages: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """'w3+6': width step on stages 3 and 6; 'd5': depth step on stage 5; 'baseline'."""
        if not self.dimension:
            return "baseline"
        return f"{self.dimension[0]}{'+'.join(map(str, self.stages))}"

    @property
    def stage_label(self) -> str:
        return "+".join(map(str, self.stages))

    def step(self, base: NetworkSpec, dimension: str, stages: tuple[int, ...]) -> "Node":
        spec, widths = rbis_step(self.spec, base, self.width_steps, dimension, stages)
        depths = list(self.depth_steps)
        if dimension == DEPTH:
            for i in stages:
                depths[i] += 1
        spec = replace(spec, name=f"{base.name}-rbis")
        return Node(spec, widths, tuple(depths), dimension=dimension, stages=tuple(stages))


def score(acc: float, lat: float, parent_acc: float, parent_lat: float) -> tuple[bool, float]:
    """(preferred, score). Preferred: no slower and no loss; score = inf for those."""
    if lat <= parent_lat:
        return (True, math.inf) if acc >= parent_acc else (False, 0.0)
    return False, max(acc - parent_acc, 0.0) / (lat - parent_lat)


def choose(cands: list[Node], parent: Node) -> int | None:
    """Index (lexicographic position) of the chosen candidate among evaluated eligible ones."""
    best, best_key = None, None
    for j, c in enumerate(cands):
        if math.isnan(c.accuracy):
            continue
        preferred, s = score(c.accuracy, c.latency_ms, parent.accuracy, parent.latency_ms)
        key = (0, -c.accuracy, c.latency_ms, j) if preferred else (1, -s, c.latency_ms, j)
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

    def to_dict(self) -> dict:
        d = {"resolution": self.resolution, "feasible": self.feasible, "reason": self.reason,
             "iterations": self.iterations}
        if self.feasible and self.best is not None:
            b = self.best
            d.update(accuracy=b.accuracy, latency_ms=b.latency_ms,
                     fingerprint=b.spec.fingerprint, widths=list(b.spec.widths),
                     depths=list(b.spec.depths), width_steps=list(b.width_steps),
                     depth_steps=list(b.depth_steps), network=b.spec.to_dict(),
                     path=[{"step": n.label, "latency_ms": n.latency_ms, "accuracy": n.accuracy}
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

    def to_dict(self) -> dict:
        w = self.winner.best if self.winner else None
        c = self.cache
        return {
            "baseline": self.base.name, "baseline_fingerprint": self.base.fingerprint,
            "budget_ms": self.budget_ms, "resolutions": self.resolutions,
            "stages": list(self.stages), "candidates_k": self.k,
            "latency_source": c.source.describe(), "evaluator": c.evaluator.describe(),
            "resolution": self.winner.resolution if self.winner else None,
            "network": w.spec.to_dict() if w else None,
            "accuracy": w.accuracy if w else None,
            "latency_ms": w.latency_ms if w else None,
            "per_resolution": [r.to_dict() for r in self.per_resolution],
            "counts": {"latency_reads": c.latency_calls, "accuracy_evaluations": c.accuracy_calls,
                       "latency_cache_hits": c.latency_hits,
                       "accuracy_cache_hits": c.accuracy_hits,
                       "distinct_latencies": len(c.latency),
                       "distinct_accuracies": len(c.accuracy), "resumed": c.resumed},
        }


def _row(r: int, it: int | str, dim: str, node: Node, phase: str, kept: bool, eligible: bool,
         parent: Node | None, chosen: bool) -> dict:
    preferred, s = (False, math.nan)
    if parent is not None and not math.isnan(node.accuracy):
        preferred, s = score(node.accuracy, node.latency_ms, parent.accuracy, parent.latency_ms)
    return {"resolution": r, "iteration": it, "dimension": dim, "stages": node.stage_label,
            "latency_ms": node.latency_ms,
            "accuracy": "" if math.isnan(node.accuracy) else node.accuracy,
            "score": "" if math.isnan(s) else s, "chosen": chosen, "phase": phase, "kept": kept,
            "eligible": eligible, "preferred": preferred,
            "parent_latency_ms": parent.latency_ms if parent else "",
            "parent_accuracy": parent.accuracy if parent else "",
            "fingerprint": node.spec.fingerprint,
            "widths": " ".join(map(str, node.spec.widths)),
            "depths": " ".join(map(str, node.spec.depths))}


def write_trace(rows: list[dict], path: Path) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TRACE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)   # floats at full precision: the trace re-derives every decision
    write_atomic(path, buf.getvalue())


def search_resolution(base: NetworkSpec, r: int, budget_ms: float, stages: tuple[int, ...],
                      k: int, cache: Cache, trace: list[dict], max_iterations: int = 200,
                      log: Callable[[str], None] | None = None) -> ResolutionResult:
    """RBIS at one resolution; appends its rows to `trace` as it goes."""
    n = len(base.stages)
    parent = Node(base.with_resolution(r), (0,) * n, (0,) * n)
    [parent.latency_ms] = cache.latencies([(parent.spec, r)])
    feasible = parent.latency_ms <= budget_ms
    if not feasible:
        trace.append(_row(r, -1, "baseline", parent, "baseline", False, False, None, False))
        return ResolutionResult(r, False, f"baseline latency {parent.latency_ms:.3f} ms exceeds "
                                          f"the budget {budget_ms:g} ms")
    trace.append(_row(r, -1, "baseline", parent, "baseline", False, True, None, True))
    [parent.accuracy] = cache.accuracies([(parent.spec, r)])
    trace[-1] = _row(r, -1, "baseline", parent, "baseline", False, True, None, True)
    result = ResolutionResult(r, True, "", [parent])
    pairs = list(combinations_with_replacement(stages, 2))
    singles = [(a,) for a in stages]
    for it in range(max_iterations):
        dim = WIDTH if it % 2 == 0 else DEPTH
        step = _Iteration(base, r, it, dim, budget_ms, cache, trace, parent)
        chosen = step.run(pairs, "pair", k)
        if chosen is not None:
            if log:
                log(f"r={r} iteration {it} {dim}: stages {chosen.stage_label} -> "
                    f"{chosen.latency_ms:.2f} ms, {chosen.accuracy:.3f}")
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
        cands = [c for c in (parent.step(self.base, self.dimension, g) for g in groups)
                 if c.spec.fingerprint != parent.spec.fingerprint]
        for c, lat in zip(cands, self.cache.latencies([(c.spec, r) for c in cands])):
            c.latency_ms = lat
        order = sorted(range(len(cands)), key=lambda j: (cands[j].latency_ms, j))
        kept = set(order if k is None else order[:k])

        def rows(pick: int | None) -> list[dict]:
            return [_row(r, self.it, self.dimension, c, phase, j in kept, c.latency_ms <= budget,
                         parent, j == pick) for j, c in enumerate(cands)]

        start = len(self.trace)
        self.trace.extend(rows(None))   # latencies are in the trace before evaluation starts
        to_eval = [j for j in sorted(kept) if cands[j].latency_ms <= budget]
        for j, acc in zip(to_eval, self.cache.accuracies([(cands[j].spec, r) for j in to_eval])):
            cands[j].accuracy = acc
        pick = choose(cands, parent)
        self.trace[start:] = rows(pick)
        return None if pick is None else cands[pick]


def pick_winner(per_res: Sequence[ResolutionResult]) -> ResolutionResult | None:
    """Highest accuracy; ties: lower latency, then lower resolution. None if none feasible."""
    feasible = [p for p in per_res if p.feasible]
    if not feasible:
        return None
    return min(feasible, key=lambda p: (-p.best.accuracy, p.best.latency_ms, p.resolution))


def run_rbis(base: NetworkSpec, budget_ms: float, resolutions: Sequence[int],
             source: LatencySource, evaluator: Evaluator, stages: Sequence[int] | None = None,
             k: int = DEFAULT_K, out_dir: str | Path | None = None, max_iterations: int = 200,
             log: Callable[[str], None] | None = None) -> SearchResult:
    """Run RBIS at every resolution; write DIR/state.json, trace.csv, result.json if out_dir.

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
    cache = Cache(source, evaluator, out / "state.json" if out else None)
    trace: list[dict] = []
    per_res: list[ResolutionResult] = []
    result = SearchResult(base, float(budget_ms), list(resolutions), stages, k, per_res, trace,
                          cache)
    try:
        for r in resolutions:
            per_res.append(search_resolution(base, r, budget_ms, stages, k, cache, trace,
                                             max_iterations, log))
            if out:
                write_trace(trace, out / "trace.csv")
        result.winner = pick_winner(per_res)
        feasible = result.winner is not None
        if out:
            write_atomic(out / "result.json", json.dumps(result.to_dict(), indent=2))
        if not feasible:
            lat, r = min((row["latency_ms"], row["resolution"]) for row in trace)
            raise SearchError(f"budget {budget_ms:g} ms is below the baseline's latency at every "
                              f"resolution (fastest: {lat:.3f} ms at {r})")
    finally:
        if out:
            write_trace(trace, out / "trace.csv")
    return result


__all__ = ["run_rbis", "pick_winner", "search_resolution", "SearchResult", "ResolutionResult", "SearchError",
           "Cache", "Node", "score", "choose", "check_stages", "default_stages", "write_trace",
           "TRACE_COLUMNS", "DEFAULT_K"]
