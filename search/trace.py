"""An RBIS search's trace.csv: one row per candidate, every decision re-derivable from it.

Columns (`trace_columns(metric)` names the value columns after the evaluator's metric):
resolution, iteration, dimension, stages, latency_ms, the value, score, chosen, phase (pair,
single, baseline), kept (among the K lowest latencies), eligible (within the budget),
preferred, the parent's latency and value, fingerprint, widths, depths, latency_from (which
source answered), the latency's provenance (`latency_provenance`: live, reused, table, lut,
lut-calibrated, py; its CI, `budget_test`, a live batch's `scale_factor` and `scale_batch`,
`latency_note`; `latency_lab/measure/scale.py`), and the race's: the value's 95% interval that
the decision used
(`<metric>_ci_low`, `<metric>_ci_high`), `n` (seeds or repeats) and `decision` (the chosen
row's outcome: separated, tie at cap (K seeds), no interval, single candidate; `contender`
on the rows tied with it; see `search.racing`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

from latency_lab.fileio import write_atomic

if TYPE_CHECKING:
    from latency_lab.search.racing import Decision
    from latency_lab.search.search_cache import Cache

TRACE_COLUMNS = ["resolution", "iteration", "dimension", "stages", "latency_ms", "accuracy",
                 "score", "chosen", "phase", "kept", "eligible", "preferred",
                 "parent_latency_ms", "parent_accuracy", "fingerprint", "widths", "depths",
                 "latency_from", "latency_provenance", "latency_ci_low_ms",
                 "latency_ci_high_ms", "budget_test", "scale_factor", "scale_batch",
                 "latency_note", "ci_low", "ci_high", "n", "decision"]
# A point's provenance as the source said it (source_base.LatencySource.provenance), and the
# trace column each field goes to.
PROVENANCE_COLUMNS = {"provenance": "latency_provenance", "ci_low_ms": "latency_ci_low_ms",
                      "ci_high_ms": "latency_ci_high_ms", "scale_factor": "scale_factor",
                      "scale_batch": "scale_batch", "note": "latency_note"}


def trace_columns(metric: str = "accuracy") -> list[str]:
    """TRACE_COLUMNS with the evaluator's value and its parent's named after its metric."""
    names = {"accuracy": metric, "parent_accuracy": f"parent_{metric}",
             "ci_low": f"{metric}_ci_low", "ci_high": f"{metric}_ci_high"}
    return [names.get(c, c) for c in TRACE_COLUMNS]


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


def decision_text(decision: "Decision | None", j: int, node) -> str:
    """The trace's `decision`: the chosen row's outcome, 'contender' on the rows tied with it."""
    if decision is None:
        return ""
    if j == decision.leader:
        cap = f" ({node.n} seeds)" if decision.outcome == "tie at cap" else ""
        return decision.outcome + cap
    return "contender" if j in decision.contenders else ""


__all__ = ["TRACE_COLUMNS", "PROVENANCE_COLUMNS", "trace_columns", "budget_test", "mark_origins",
           "write_trace", "decision_text"]
