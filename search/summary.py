"""summary.md beside a search's result.json: the baseline against the winner, in one table.

Parameters and MACs come from the specs (`complexity`), the latencies with how sure they are
(the source's `detail`: a measured CI, a recorded table row's CI, a LUT's expected error),
the evaluator's values (an accuracy, or a proxy score named as such) with the evaluator that
gave them, marked SYNTHETIC when it was.
"""

from __future__ import annotations

from pathlib import Path

from latency_lab.network import complexity
from latency_lab.fileio import write_atomic


def _column(spec, resolution: int, latency_ms: float | None, latency_detail: str,
            value: float | None, metric: str, unit: str) -> dict[str, str]:
    return {
        "network": f"{spec.name} ({spec.fingerprint})",
        "resolution": f"{resolution} px",
        "widths": " ".join(map(str, spec.widths)),
        "depths": " ".join(map(str, spec.depths)),
        "parameters": f"{complexity.params(spec):,d}",
        "MACs": f"{complexity.macs(spec, resolution) / 1e9:.3f} G",
        "latency": (f"{latency_ms:.3f} ms" if latency_ms is not None else "not read")
                   + (f" ({latency_detail})" if latency_detail else ""),
        metric: (f"{value:.3f}{unit}" if unit else f"{value:.4f}") if value is not None
                else "not evaluated",
    }


def write_search_summary(path: str | Path, result, base_point: tuple | None) -> Path:
    """`result`: a search.rbis.SearchResult with a winner; `base_point`: (latency, value) of
    the baseline at its own resolution, or None where the sources do not have it."""
    cache, base, w = result.cache, result.base, result.winner
    ev, src = cache.evaluator, cache.source
    d = result.to_dict()
    metric, unit = ev.metric, ev.unit
    synthetic = getattr(ev, "synthetic", "")
    winner_spec = result.provenance(w)
    cols = {}
    if base_point is not None:
        cols[f"baseline @ {base.resolution}"] = _column(
            base, base.resolution, base_point[0], src.detail(base, base.resolution),
            base_point[1], metric, unit)
    start = w.path[0]
    cols[f"baseline @ {w.resolution}"] = _column(base, w.resolution, start.latency_ms,
                                                 src.detail(start.spec, w.resolution),
                                                 start.value, metric, unit)
    cols["RBIS winner"] = _column(winner_spec, w.resolution, w.best.latency_ms,
                                  src.detail(w.best.spec, w.resolution), w.best.value,
                                  metric, unit)
    names = list(cols)
    rows = list(next(iter(cols.values())))
    lines = [f"# RBIS: {base.name} scaled to {result.budget_ms:g} ms", ""]
    if synthetic:
        lines += [f"**The {metric} values are SYNTHETIC: {synthetic}.**", ""]
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {r} | " + " | ".join(cols[n][r] for n in names) + " |" for r in rows]
    lines += ["", f"- budget: {result.budget_ms:g} ms; resolutions searched: "
                  f"{', '.join(map(str, result.resolutions))}; stages scaled: "
                  f"{', '.join(map(str, result.stages))}; K = {result.k}",
              f"- winner: {w.resolution} px after {w.iterations} steps: "
              + " ".join(n.label for n in w.path[1:]),
              f"- {metric} evaluator: {d['evaluator']}"
              + (f" (SYNTHETIC: {synthetic})" if synthetic else ""),
              f"- latency source: {d['latency_source']}",
              f"- winner's provenance: {winner_spec.source}",
              f"- {d['counts']['latency_reads']} latency reads, "
              f"{d['counts']['evaluations']} evaluations; every candidate in trace.csv, the "
              "paths in paths.png", ""]
    fmt = (lambda v: f"{v:.3f}{unit}") if unit else (lambda v: f"{v:.4f}")
    per = [f"| {p['resolution']} | " + (f"{fmt(p[metric])} | {p['latency_ms']:.3f} ms | "
                                         f"{p['iterations']} |" if p["feasible"]
                                         else f"infeasible: {p['reason']} | | |")
           for p in d["per_resolution"]]
    lines += [f"| resolution | best {metric} | latency | steps |", "|---|---|---|---|", *per, ""]
    return write_atomic(path, "\n".join(lines))
