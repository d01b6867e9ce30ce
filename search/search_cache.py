"""A search's cache: latencies and evaluator values by (fingerprint, resolution), with spreads.

Values come, in this order, from this search's state (`DIR/state.json`), from the store's
accuracy cache (`accuracy_cache`, shared by every search; skipped for values recorded before
this run with --reevaluate), or from the evaluator; each new one is recorded in both as it
finishes. For an evaluator that depends on the parent (`uses_parent`) the state's key also
holds the lineage, as the store's does.

Every value keeps its spread (`spread_of`): its CI, its `n` and its draws (the value of every
seed of a training evaluator, every repeat of a Zen-Score). A race (`search.racing`) asks for
the same candidate with more seeds: `seeded(request, K)` is the request of the evaluator with
`seeds=K` (`variant`), evaluated, cached and recorded like any other under its own key; the
trainings it shares with fewer seeds are read back from the weights cache, not repeated.
`noise()` pools the seed noise of every point the search has asked for with two seeds or more.

The evaluations a batch still needs are handed to `run` together (default:
`evaluate_locally`, one after the other in this process); `run` yields (index, result) in any
order as they finish, each is recorded at once, and the caller gets the values when all are
in, so where they ran cannot change the search's decisions.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from latency_lab.errors import UserError
from latency_lab.fileio import parse_json, read_text, write_atomic
from latency_lab.network.spec import NetworkSpec
from latency_lab.search.accuracy_cache import AccuracyCache, lineage_id
from latency_lab.search.evaluators import (EvalRequest, EvalResult, Evaluator, Runner, Step,
                                           evaluate_locally)
from latency_lab.search.intervals import pooled_sd
from latency_lab.search.sources import LatencySource

STATE_VERSION = 2


class SearchError(UserError):
    """A search that cannot go on (bad input, unusable state); the trace so far is kept."""


def spread(result: EvalResult) -> dict:
    """What a value's noise is known from: CI, n, and the draws it averages."""
    d = result.details or {}
    draws = d.get("seed_values") or d.get("repeats") or [float(result.value)]
    return {"ci": list(result.ci) if result.ci else None, "n": int(result.n),
            "draws": [float(x) for x in draws]}


class Cache:
    """Latencies and evaluator values by (fingerprint, resolution), persisted to `path` if given
    (see the module docstring)."""

    def __init__(self, source: LatencySource, evaluator: Evaluator, path: Path | None = None,
                 accuracy_cache: AccuracyCache | None = None, run: Runner = evaluate_locally):
        self.source, self.evaluator, self.path = source, evaluator, path
        self.accuracy_cache, self.run = accuracy_cache, run
        self.latency: dict[str, float] = {}
        self.values: dict[str, float] = {}
        self.spreads: dict[str, dict] = {}
        self.origin: dict[str, str] = {}    # which source answered (a chain has several)
        self.provenance: dict[str, dict] = {}   # how (source_base.LatencySource.provenance)
        self.latency_calls = self.evaluations = 0     # made by this process
        self.latency_hits = self.value_hits = self.store_hits = 0
        self.resumed = False
        self.dirty = False      # results not yet in state.json (instant ones: `save`)
        self.progress = None    # a search.progress.SearchProgress, told of every evaluation
        self.where = ""         # what is being evaluated now ("r=224, iteration 3"), for it
        self.used: set[str] = set()     # values asked for by this run, in the search's order
        self._variants: dict[str, tuple[Evaluator, AccuracyCache | None]] = {
            evaluator.describe(): (evaluator, accuracy_cache)}
        if path is not None and path.exists():
            self._load()

    @staticmethod
    def key(spec: NetworkSpec, resolution: int) -> str:
        return f"{spec.fingerprint}@{int(resolution)}"

    def request(self, spec: NetworkSpec, resolution: int, parent: EvalRequest | None = None,
                step: Step | None = None) -> EvalRequest:
        return self.evaluator.request(spec, resolution, parent, step)

    # -- seeds ----------------------------------------------------------------------------
    def variant(self, seeds: int) -> Evaluator:
        """The evaluator with `seeds=K` (built once per K)."""
        if self.evaluator.seeds is None:
            raise SearchError(f"evaluator {self.evaluator.name} has no seeds option")
        if seeds == self.evaluator.seeds:
            return self.evaluator
        ev = self.evaluator.with_options(seeds=int(seeds))
        text = ev.describe()
        if text not in self._variants:
            acc = None
            if self.accuracy_cache is not None:
                acc = AccuracyCache(self.accuracy_cache.store, ev)
                acc.since = self.accuracy_cache.since
            self._variants[text] = (ev, acc)
        return self._variants[text][0]

    def seeded(self, request: EvalRequest, seeds: int) -> EvalRequest:
        """`request` evaluated with `seeds` seeds (its parent and step unchanged)."""
        return replace(request, evaluator=self.variant(seeds).describe())

    def _of(self, req: EvalRequest) -> tuple[Evaluator, AccuracyCache | None]:
        try:
            return self._variants[req.evaluator]
        except KeyError:
            raise SearchError(f"request for an evaluator this search does not use: "
                              f"{req.evaluator}") from None

    def _value_key(self, req: EvalRequest) -> str:
        ev = self._of(req)[0]
        lineage = lineage_id(ev, req)
        base = self.key(req.spec, req.resolution) + (f"#{lineage}" if lineage else "")
        return base if ev is self.evaluator else f"{base}~seeds={ev.seeds}"

    # -- the state file ---------------------------------------------------------------------
    def _ids(self) -> dict[str, str]:
        return {"latency_source": self.source.describe(), "evaluator": self.evaluator.describe()}

    def _load(self) -> None:
        d, latency, values, spreads = read_state(self.path)
        for what, mine in self._ids().items():
            if d.get(what) != mine:
                raise SearchError(f"search state {self.path} was made with {what} "
                                  f"{d.get(what)!r}, not {mine!r}; use another --out or delete it")
        self.latency, self.values, self.spreads, self.resumed = latency, values, spreads, True
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
                                            "values": self.values, "spreads": self.spreads,
                                            "latency_from": self.origin,
                                            "latency_provenance": self.provenance,
                                            "latency_scale": getattr(
                                                self.source, "scale_state", lambda: None)()},
                                           indent=1, sort_keys=True, default=_plain))

    def flush(self) -> None:
        if self.dirty:
            self.save()

    # -- latencies --------------------------------------------------------------------------
    def latencies(self, points: Sequence[tuple[NetworkSpec, int]]) -> list[float]:
        todo: dict[str, tuple[NetworkSpec, int]] = {}
        # a chain keeps its predictions monotone against what the search already holds
        known = getattr(self.source, "known_latency", None)
        for spec, res in points:
            k = self.key(spec, res)
            if k in self.latency or k in todo:
                self.latency_hits += 1
                if known is not None and k in self.latency:
                    known(spec, res, self.latency[k])
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

    # -- values -----------------------------------------------------------------------------
    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        """Values of the requests, in order; each new evaluation saved as it finishes. The
        requests may name several variants (seeds) of the evaluator: each group is one batch."""
        todo: dict[str, EvalRequest] = {}
        for req in requests:
            k = self._value_key(req)
            self.used.add(k)
            if k in self.values or k in todo:
                self.value_hits += 1
            else:
                todo[k] = req
        groups: dict[str, list[tuple[str, EvalRequest]]] = {}
        found = False
        for k, req in todo.items():
            acc = self._of(req)[1]
            cached = acc.lookup(req) if acc else None
            if cached is None:
                groups.setdefault(req.evaluator, []).append((k, req))
                continue
            self.store_hits += 1
            self.values[k], self.spreads[k] = cached.value, spread(cached)
            found = True
        if found:
            self.save(instant=True)     # a store lookup, redone in microseconds
        if self.progress is not None:
            self.progress.had(len(requests) - sum(len(m) for m in groups.values()))
        for text, missing in groups.items():
            ev, acc = self._variants[text]
            clock = time.monotonic()
            for i, result in self.run(ev, [req for _, req in missing]):
                if self.progress is not None:   # the time since the last result came back
                    now = time.monotonic()
                    self.progress.evaluated(now - clock, self.where)
                    clock = now
                k, req = missing[i]
                self.values[k] = ev.check(req, result.value)
                self.spreads[k] = spread(result)
                self.evaluations += 1
                if acc:
                    acc.record(req, result)
                self.save(ev.instant)
        return [self.values[self._value_key(req)] for req in requests]

    def spread_of(self, request: EvalRequest) -> dict:
        """CI, n and draws of an evaluated request (a value without a recorded spread, from
        an older state file, is one draw without a CI)."""
        k = self._value_key(request)
        return self.spreads.get(k) or {"ci": None, "n": 1, "draws": [self.values[k]]}

    def noise(self) -> tuple[float, int] | None:
        """Seed noise pooled over every point this search has asked for so far with two seeds
        or more (each point once, with its most seeds): (standard deviation, degrees of
        freedom), or None. Only what the search asked for up to now, so that a resumed search
        (whose state holds every value from the start) decides as the first run did."""
        best: dict[str, list[float]] = {}
        for k in self.used:
            s = self.spreads.get(k)
            if s is None:
                continue
            point = k.split("~")[0]
            if len(s["draws"]) > len(best.get(point, ())):
                best[point] = s["draws"]
        return pooled_sd(list(best.values()))

    def value_of(self, spec: NetworkSpec, resolution: int, seeds: int | None = None) -> float:
        """The value of a network that is no search step (a baseline family's member)."""
        req = self.request(spec, resolution)
        return self.evaluate([self.seeded(req, seeds) if seeds else req])[0]


def read_state(path: Path) -> tuple[dict, dict, dict, dict]:
    """A search state's (document, latencies, values, spreads), every number checked; a
    SearchError for one that cannot be resumed from. `check_state` runs it before the search
    opens anything (a store, a device), so a refusal leaves no file touched."""
    try:
        d = parse_json(read_text(path, "search state"), "search state")
        if d.get("version") not in (1, STATE_VERSION):
            raise ValueError(f"version {d.get('version')}")
        latency = {str(k): float(v) for k, v in d["latency_ms"].items()}
        # version 1 called the evaluator's values "accuracy" whatever they were
        values = {str(k): float(v) for k, v in d["values" if "values" in d else
                                                "accuracy"].items()}
        spreads = {str(k): dict(v) for k, v in d.get("spreads", {}).items()}
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
        raise SearchError(f"search state {path} is unreadable ({exc}); delete it to "
                          f"start over") from None
    return d, latency, values, spreads


def check_state(out: Path) -> None:
    """Refuse a state in `out` that cannot be resumed from, before any work."""
    if (out / "state.json").exists():
        read_state(out / "state.json")


def _plain(x):
    """JSON for what a provenance may hold beyond plain types (numpy floats)."""
    return float(x)


__all__ = ["Cache", "SearchError", "STATE_VERSION", "spread"]
