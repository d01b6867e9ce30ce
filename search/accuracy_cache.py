"""The accuracy cache: every evaluation kept in the SQLite store, and exported as a table.

Evaluations are the expensive half of a search (a Zen-Score is seconds, a training hours), so
each one is committed to the store the moment it finishes (`AccuracyCache.record`), keyed by
(network fingerprint, resolution, `Evaluator.key()`, lineage). The evaluator key covers
everything that changes the number: the evaluator's name and argument, every option with its
default spelled out, its code version and, where there is one, the data set's fingerprint. The
lineage is empty except for evaluators whose result depends on the parent they start from
(`uses_parent`): there it is a hash of the (fingerprint, resolution) path from the baseline.
A later search, with any --out, meets a cached candidate and takes its value without
evaluating it; `--reevaluate` evaluates again and adds a newer row (the old one stays).

`export_table` writes the cache as an accuracy table (CSV, one evaluator per file) that the
`table:PATH` evaluator reads back, so a set of scores or accuracies can be shipped and searched
against elsewhere.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latency_lab.errors import UserError
from latency_lab.fileio import write_atomic
from latency_lab.measure.store import Store
from latency_lab.measure.store_evaluations import add_evaluation, newest_evaluations
from latency_lab.search.evaluators import EvalRequest, EvalResult, Evaluator

TABLE_COLUMNS = ("network", "fingerprint", "resolution", "metric", "value", "ci_low", "ci_high",
                 "n", "seconds", "evaluator", "evaluator_key", "lineage", "evaluated_at",
                 "widths", "depths", "network_json")


def lineage_id(evaluator: Evaluator, request: EvalRequest) -> str:
    """'' unless the evaluator's result depends on the parent path (then a hash of it)."""
    if not evaluator.uses_parent or request.parent is None:
        return ""
    path = json.dumps(request.lineage(), separators=(",", ":"))
    return hashlib.sha256(path.encode()).hexdigest()[:16]


class AccuracyCache:
    """One evaluator's view of the store's evaluations."""

    def __init__(self, store: Store, evaluator: Evaluator, reevaluate: bool = False):
        self.store, self.evaluator = store, evaluator
        self.key = evaluator.key()
        # --reevaluate: values recorded before this run are not taken (newer ones are, so a
        # re-evaluating search that is interrupted resumes without evaluating twice).
        self.since = time.time() if reevaluate else None

    def lookup(self, request: EvalRequest) -> EvalResult | None:
        """The newest cached result of this request, or None."""
        rows = newest_evaluations(self.store, self.key, request.spec.fingerprint,
                                  int(request.resolution),
                                  lineage_id(self.evaluator, request), self.since)
        if not rows:
            return None
        r = rows[0]
        ci = None if r["ci_low"] is None else (r["ci_low"], r["ci_high"])
        return EvalResult(float(r["value"]), int(r["n"]), ci, float(r["seconds"]),
                          json.loads(r["details"]))

    def get(self, request: EvalRequest) -> tuple[EvalResult, bool]:
        """(result, evaluated now): from the cache, else evaluated and recorded."""
        cached = self.lookup(request)
        if cached is not None:
            return cached, False
        result = self.evaluator.evaluate(request)
        self.evaluator.check(request, result.value)
        self.record(request, result)
        return result, True

    def get_many(self, requests: list[EvalRequest], run=None) -> list[tuple[EvalResult, bool]]:
        """`get` for a batch: the missing ones go to `run` together (a runner, as in
        `rbis.Cache`; default: here, one after the other), each recorded as it comes back."""
        from latency_lab.search.evaluators import evaluate_locally

        out: list = [self.lookup(r) for r in requests]
        missing = [i for i, r in enumerate(out) if r is None]
        out = [(r, False) for r in out]
        for j, result in (run or evaluate_locally)(self.evaluator,
                                                   [requests[i] for i in missing]):
            i = missing[j]
            self.evaluator.check(requests[i], result.value)
            self.record(requests[i], result)
            out[i] = (result, True)
        return out

    def record(self, request: EvalRequest, result: EvalResult) -> None:
        ci = result.ci or (None, None)
        add_evaluation(
            self.store, request.spec, request.resolution, self.key,
            lineage_id(self.evaluator, request),
            {"evaluator": self.evaluator.describe(), "metric": self.evaluator.metric,
             "value": float(result.value), "n": int(result.n), "ci_low": ci[0],
             "ci_high": ci[1], "seconds": float(result.seconds), "details": result.details})


def select_key(store: Store, evaluator: str | None) -> str | None:
    """The evaluator key meant by `--evaluator`: an evaluator text (`zen-tuned`,
    `zen,batch=8`), or a stored key or unique prefix of one. None: all of them."""
    if evaluator is None:
        return None
    keys = sorted({r["evaluator_key"] for r in newest_evaluations(store)})
    if evaluator in keys:
        return evaluator
    prefixed = [k for k in keys if k.startswith(evaluator)]
    if len(prefixed) == 1:
        return prefixed[0]
    from latency_lab.search.evaluators import parse_evaluator

    try:
        key = parse_evaluator(evaluator).key()
    except UserError:
        key = None
    if key in keys:
        return key
    listed = "\n  ".join(keys) if keys else "(none)"
    raise UserError(f"no evaluations by {evaluator!r} in {store.path}; stored evaluator keys:"
                    f"\n  {listed}")


def table_rows(store: Store, key: str | None = None,
               fingerprint: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for r in newest_evaluations(store, key, fingerprint):
        arch = json.loads(r["network_json"])
        rows.append({
            "network": r["network"], "fingerprint": r["fingerprint"],
            "resolution": r["resolution"], "metric": r["metric"], "value": r["value"],
            "ci_low": "" if r["ci_low"] is None else r["ci_low"],
            "ci_high": "" if r["ci_high"] is None else r["ci_high"], "n": r["n"],
            "seconds": round(r["seconds"], 4), "evaluator": r["evaluator"],
            "evaluator_key": r["evaluator_key"], "lineage": r["lineage"],
            "evaluated_at": datetime.fromtimestamp(r["evaluated_at"], timezone.utc)
            .isoformat(timespec="seconds"),
            "widths": " ".join(str(s["width"]) for s in arch["stages"]),
            "depths": " ".join(str(s["depth"]) for s in arch["stages"]),
            "network_json": json.dumps(arch, sort_keys=True, separators=(",", ":"))})
    return rows


def export_table(store: Store, path: str | Path, key: str | None = None,
                 fingerprint: str | None = None) -> list[dict[str, Any]]:
    """Write the newest evaluation per key as an accuracy table; one evaluator per file."""
    rows = table_rows(store, key, fingerprint)
    if not rows:
        raise UserError(f"no evaluations to export from {store.path}"
                        + (f" for evaluator key {key}" if key else ""))
    keys = sorted({r["evaluator_key"] for r in rows})
    if len(keys) > 1:
        raise UserError("the store holds evaluations by several evaluators; pick one with "
                        "--evaluator:\n  " + "\n  ".join(keys))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())
    return rows


__all__ = ["AccuracyCache", "lineage_id", "export_table", "table_rows", "select_key",
           "TABLE_COLUMNS"]
