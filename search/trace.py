"""An RBIS search's trace.csv: one row per candidate, every decision re-derivable from it.

Columns (`trace_columns(metric)` names the value columns after the evaluator's metric):
resolution, iteration, dimension, stages, latency_ms, the value, score, chosen, phase (pair,
single, baseline), kept (among the K lowest latencies), eligible (within the budget),
preferred, the parent's latency and value, fingerprint, widths, depths, latency_from (which
source answered), and the race's: the value's 95% interval that the decision used
(`<metric>_ci_low`, `<metric>_ci_high`), `n` (seeds or repeats) and `decision` (the chosen
row's outcome: separated, tie at cap (K seeds), no interval, single candidate; `contender`
on the rows tied with it; see `search.racing`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from latency_lab.fileio import write_atomic

if TYPE_CHECKING:
    from latency_lab.search.racing import Decision
    from latency_lab.search.search_cache import Cache

TRACE_COLUMNS = ["resolution", "iteration", "dimension", "stages", "latency_ms", "accuracy",
                 "score", "chosen", "phase", "kept", "eligible", "preferred",
                 "parent_latency_ms", "parent_accuracy", "fingerprint", "widths", "depths",
                 "latency_from", "ci_low", "ci_high", "n", "decision"]


def trace_columns(metric: str = "accuracy") -> list[str]:
    """TRACE_COLUMNS with the evaluator's value and its parent's named after its metric."""
    names = {"accuracy": metric, "parent_accuracy": f"parent_{metric}",
             "ci_low": f"{metric}_ci_low", "ci_high": f"{metric}_ci_high"}
    return [names.get(c, c) for c in TRACE_COLUMNS]


def mark_origins(rows: list[dict], cache: "Cache") -> None:
    """Set each trace row's `latency_from`: which latency source answered it."""
    for row in rows:
        row["latency_from"] = cache.origin.get(f"{row['fingerprint']}@{row['resolution']}", "")


def write_trace(rows: list[dict], path: Path, metric: str = "accuracy",
                cache: "Cache | None" = None) -> None:
    """trace.csv; with `cache`, each row says which latency source answered it."""
    import io

    if cache is not None:
        mark_origins(rows, cache)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=trace_columns(metric), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)   # floats at full precision: the trace re-derives every decision
    write_atomic(path, buf.getvalue())


def decision_text(decision: "Decision | None", j: int, node) -> str:
    """The trace's `decision`: the chosen row's outcome, 'contender' on the rows tied with it."""
    if decision is None:
        return ""
    if j == decision.leader:
        cap = f" ({node.n} seeds)" if decision.outcome == "tie at cap" else ""
        return decision.outcome + cap
    return "contender" if j in decision.contenders else ""


__all__ = ["TRACE_COLUMNS", "trace_columns", "mark_origins", "write_trace", "decision_text"]
