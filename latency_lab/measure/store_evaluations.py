"""The store's `evaluations` rows: the storage of the accuracy cache (search/accuracy_cache.py).

`evaluations` (a table of `store.py`) holds one row per finished evaluation of a network at a
resolution by an evaluator, keyed by the evaluator's key (which covers everything that changes
the number) and, for evaluators that start from a parent's weights, the lineage. A
re-evaluation adds a row; the newest row of a key is its value, the older ones stay. Added to
the schema the same way as `imported` and `leases`, without a schema bump.

Each function takes an open `Store`; SQLite failures are one-line StoreErrors, as for the
store's own methods (`store_file.guarded`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from latency_lab.measure.store_file import sqlite_errors
from latency_lab.network.spec import NetworkSpec

EVALUATION_FIELDS = ("evaluator", "metric", "value", "n", "ci_low", "ci_high", "seconds",
                     "details")


@sqlite_errors
def add_evaluation(store, spec: NetworkSpec, resolution: int, evaluator_key: str,
                   lineage: str, row: dict[str, Any]) -> None:
    """Commit one finished evaluation (`row` has EVALUATION_FIELDS; details a dict)."""
    store.register(None, spec)
    values = [row.get(k) for k in EVALUATION_FIELDS]
    values[-1] = json.dumps(row.get("details") or {}, sort_keys=True, default=str)
    with store.db:
        store.db.execute(
            "INSERT INTO evaluations (fingerprint, resolution, evaluator_key, lineage, "
            + ", ".join(EVALUATION_FIELDS) + ", evaluated_at) VALUES (?, ?, ?, ?, "
            + ", ".join("?" * len(EVALUATION_FIELDS)) + ", ?)",
            (spec.fingerprint, int(resolution), evaluator_key, lineage, *values, time.time()))


@sqlite_errors
def newest_evaluations(store, evaluator_key: str | None = None, fingerprint: str | None = None,
                       resolution: int | None = None, lineage: str | None = None,
                       since: float | None = None) -> list[dict[str, Any]]:
    """The newest evaluation per (evaluator key, fingerprint, resolution, lineage), as dicts
    with the `evaluations` columns plus `network` (name) and `network_json`; `since`: only
    rows evaluated at or after that time."""
    where, args = [], []
    for col, v in (("evaluator_key", evaluator_key), ("fingerprint", fingerprint),
                   ("resolution", resolution), ("lineage", lineage)):
        if v is not None:
            where.append(f"e.{col}=?")
            args.append(v)
    if since is not None:
        where.append("e.evaluated_at>=?")
        args.append(since)
    cur = store.db.execute(
        "SELECT e.*, n.name AS network, n.spec AS network_json FROM evaluations e"
        " JOIN networks n ON n.fingerprint = e.fingerprint WHERE e.id IN (SELECT MAX(id) FROM"
        " evaluations e" + (" WHERE " + " AND ".join(where) if where else "")
        + " GROUP BY evaluator_key, fingerprint, resolution, lineage)"
        " ORDER BY e.evaluator_key, n.name, e.fingerprint, e.resolution, e.lineage", args)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
