"""summary.md beside a search's result.json: the baseline against the winner, in one table.

Parameters and MACs come from the specs (`complexity`), the latencies with how sure they are
and where they came from (the provenance the search kept: live on the search's scale with its
batch factor, reused from the store with when and under what load, a recorded table row's CI,
a LUT's prediction calibrated to the table), the evaluator's values (an accuracy, or a proxy
score named as such) with the evaluator that gave them, marked SYNTHETIC when it was. A
section says how the latencies were put on one scale: how many came from each provenance, the
live batches' factors, the LUT's calibration.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from latency_lab.network import complexity
from latency_lab.fileio import write_atomic


def _detail(cache, spec, resolution: int) -> str:
    """How sure a latency is and where it came from: the provenance the search kept (also
    on resume), else what the source still knows."""
    p = cache.provenance.get(cache.key(spec, resolution))
    if p and p.get("detail"):
        return p["detail"]
    return cache.source.detail(spec, resolution)


def provenance_counts(cache) -> str:
    """'live 120, reused 3, table 40' over the search's distinct latencies."""
    counts = Counter((p or {}).get("provenance") or "?" for p in cache.provenance.values())
    return ", ".join(f"{k} {n}" for k, n in counts.most_common())


def scale_summary(cache) -> list[str]:
    """The live batches' factors and the LUT calibrations, a line each."""
    parts = []
    state = getattr(cache.source, "scale_state", lambda: None)()
    batches = (state or {}).get("batches") or []
    if batches:
        f = [b["factor"] for b in batches]
        rel = [b["factor_rel"] for b in batches]
        refs = sorted({b["reference"] for b in batches})
        parts.append(f"{len({b['batch'] for b in batches})} live batches on one scale "
                     f"(reference {', '.join(refs[:3])}{' ...' if len(refs) > 3 else ''}): "
                     f"factor {min(f):.3f}-{max(f):.3f}, median {statistics.median(f):.3f}, "
                     f"its 95% CI +-{100 * statistics.median(rel):.1f}% (median)")
    for cal in getattr(cache.source, "calibrations", {}).values():
        parts.append(cal.describe())
    return parts


def _value(value: float, unit: str) -> str:
    return f"{value:.3f}{unit}" if unit else f"{value:.4f}"


def _with_spread(value: float | None, unit: str, ci=None, n: int | None = None) -> str:
    if value is None:
        return "not evaluated"
    text = _value(value, unit)
    if ci:
        text += f" (95% CI {_value(ci[0], unit)} to {_value(ci[1], unit)}, n={n})"
    return text


def _column(spec, resolution: int, latency_ms: float | None, latency_detail: str,
            value: float | None, metric: str, unit: str, ci=None,
            n: int | None = None) -> dict[str, str]:
    return {
        "network": f"{spec.name} ({spec.fingerprint})",
        "resolution": f"{resolution} px",
        "widths": " ".join(map(str, spec.widths)),
        "depths": " ".join(map(str, spec.depths)),
        "parameters": f"{complexity.params(spec):,d}",
        "MACs": f"{complexity.macs(spec, resolution) / 1e9:.3f} G",
        "latency": (f"{latency_ms:.3f} ms" if latency_ms is not None else "not read")
                   + (f" ({latency_detail})" if latency_detail else ""),
        metric: _with_spread(value, unit, ci, n),
    }


def _scale_section(cache, result, w) -> list[str]:
    """How the latencies came to be on one scale; whether the winner's CI reaches T."""
    from latency_lab.search.trace import budget_test

    out = ["## Latency provenance and scale", "",
           f"- provenance of the {len(cache.provenance)} distinct latencies (trace.csv "
           f"`latency_provenance`, per candidate): {provenance_counts(cache) or 'not recorded'}"]
    out += [f"- {t}" for t in scale_summary(cache)]
    p = cache.provenance.get(cache.key(w.best.spec, w.resolution)) or {}
    test = budget_test(float(p.get("ci_low_ms") or "nan"), float(p.get("ci_high_ms") or "nan"),
                       result.budget_ms)
    if test:
        out.append(f"- the winner's latency against the budget: {test}"
                   + (" (its 95% CI reaches the budget: inside the noise)" if test == "tie"
                      else ""))
    return out + [""]


VERDICTS = {"win": "a win (above the baseline's interval)",
            "tie": "a tie (inside the baseline's interval: not a win)",
            "below": "below the baseline's interval", "baseline": "no step was taken",
            "no interval": "no verdict: the values have no interval"}


def _decisions(r) -> str:
    counts: dict[str, int] = {}
    for d in r.decisions:
        counts[d["outcome"]] = counts.get(d["outcome"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items()) or "none"


def write_search_summary(path: str | Path, result, base_point: tuple | None) -> Path:
    """`result`: a search.rbis.SearchResult with a winner; `base_point`: (latency, value) of
    the baseline at its own resolution, or None where the sources do not have it. Values with
    an interval show it (the interval decisions used: `search.racing`), and the winner is
    called a tie when it lies inside the baseline's interval."""
    cache, base, w = result.cache, result.base, result.winner
    ev = cache.evaluator
    d = result.to_dict()
    metric, unit = ev.metric, ev.unit
    synthetic = getattr(ev, "synthetic", "")
    winner_spec = result.provenance(w)
    cols = {}
    if base_point is not None:
        cols[f"baseline @ {base.resolution}"] = _column(
            base, base.resolution, base_point[0], _detail(cache, base, base.resolution),
            base_point[1], metric, unit)
    start = w.path[0]
    cols[f"baseline @ {w.resolution}"] = _column(base, w.resolution, start.latency_ms,
                                                 _detail(cache, start.spec, w.resolution),
                                                 start.value, metric, unit, start.ci, start.n)
    cols["RBIS winner"] = _column(winner_spec, w.resolution, w.best.latency_ms,
                                  _detail(cache, w.best.spec, w.resolution), w.best.value,
                                  metric, unit, w.best.ci, w.best.n)
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
              f"- against the baseline at {w.resolution} px: {VERDICTS[w.verdict]}",
              f"- decisions (racing up to {result.max_seeds} seeds): " + _decisions(w),
              f"- {metric} evaluator: {d['evaluator']}"
              + (f" (SYNTHETIC: {synthetic})" if synthetic else ""),
              f"- latency source: {d['latency_source']}",
              f"- winner's provenance: {winner_spec.source}",
              f"- {d['counts']['latency_reads']} latency reads, "
              f"{d['counts']['evaluations']} evaluations; every candidate in trace.csv, the "
              "paths in paths.png", ""]
    lines += _scale_section(cache, result, w)
    per = []
    for p in d["per_resolution"]:
        if not p["feasible"]:
            per.append(f"| {p['resolution']} | infeasible: {p['reason']} | | | | |")
            continue
        b = p["baseline"]
        per.append(f"| {p['resolution']} | {_with_spread(p[metric], unit, p['ci'], p['n'])} | "
                   f"{_with_spread(b['value'], unit, b['ci'], b['n'])} | {p['verdict']} | "
                   f"{p['latency_ms']:.3f} ms | {p['iterations']} |")
    lines += [f"| resolution | best {metric} | baseline | verdict | latency | steps |",
              "|---|---|---|---|---|---|", *per, ""]
    return write_atomic(path, "\n".join(lines))
