"""No candidate in a committed trace predicted faster than a network it strictly contains.

Every `trace.csv` under the given folders (default `results/`) is read; at each resolution,
for every pair of rows where one network contains the other (each stage at least as wide and
as deep, not the same network: an RBIS path, or two steps of one), the bigger one must not be
faster. A pair that breaks this is a *prediction* error when either latency came from a LUT or
a function (`latency_from` lut or py, or `latency_provenance` lut/lut-calibrated/py) and a
*measurement* otherwise (live, or a table of measurements): measured latencies scatter, so a
measured pair whose 95% CIs overlap is a tie, and one whose CIs do not overlap is reported as
what it is (a real non-monotone step, e.g. a channel count a kernel runs faster at, or drift
between batches measured minutes apart, which the latency scale takes out of new searches).

    .venv/bin/python benchmarks/check_monotone.py [FOLDER ...] [--json OUT.json]

Exit status 1 when any predicted violation is found. The last run's figures:
`results/benchmarks/check_monotone.md`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREDICTED = {"lut", "lut-calibrated", "py"}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split())


def _num(row: dict, column: str) -> float:
    try:
        return float(row.get(column) or "nan")
    except ValueError:
        return math.nan


def _kind(row: dict) -> str:
    prov = row.get("latency_provenance") or ""
    src = (row.get("latency_from") or "").split(":")[0]
    if prov in PREDICTED or src in ("lut", "py"):
        return "predicted"
    return "measured"


def violations(trace: Path) -> list[dict]:
    """Every pair (bigger, smaller) at one resolution with the bigger one faster."""
    rows = list(csv.DictReader(open(trace, newline="")))
    nets: dict[tuple[int, str], dict] = {}
    for r in rows:
        if not r.get("widths") or not r.get("latency_ms"):
            continue
        nets.setdefault((int(r["resolution"]), r["fingerprint"]), r)
    by_res: dict[int, list[dict]] = {}
    for (res, _), r in nets.items():
        by_res.setdefault(res, []).append(r)
    out = []
    for res, group in by_res.items():
        shapes = [(_ints(r["widths"]), _ints(r["depths"]), float(r["latency_ms"]), r)
                  for r in group]
        for wb, db, lb, big in shapes:
            for ws, ds, ls, small in shapes:
                if lb >= ls or big is small or len(wb) != len(ws):
                    continue
                if all(a >= b for a, b in zip(wb, ws)) and all(a >= b for a, b in zip(db, ds)) \
                        and (wb, db) != (ws, ds):
                    kinds = {_kind(big), _kind(small)}
                    kind = "predicted" if "predicted" in kinds else "measured"
                    hi_big, lo_small = _num(big, "latency_ci_high_ms"), _num(small,
                                                                           "latency_ci_low_ms")
                    tie = None if math.isnan(hi_big) or math.isnan(lo_small) else \
                        lo_small <= hi_big
                    out.append({"trace": str(trace.relative_to(ROOT) if trace.is_relative_to(
                        ROOT) else trace), "resolution": res, "kind": kind, "tie": tie,
                        "bigger": big["fingerprint"], "bigger_ms": lb,
                        "bigger_from": big.get("latency_provenance") or big.get("latency_from"),
                        "smaller": small["fingerprint"], "smaller_ms": ls,
                        "smaller_from": small.get("latency_provenance")
                        or small.get("latency_from"),
                        "gap_pct": 100 * (ls - lb) / ls})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", type=Path, default=[ROOT / "results"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    traces = sorted(t for f in args.folders for t in Path(f).rglob("trace.csv"))
    found, lines = [], []
    for t in traces:
        v = violations(t)
        found += v
        pred = [x for x in v if x["kind"] == "predicted"]
        meas = [x for x in v if x["kind"] == "measured"]
        ties = sum(1 for x in meas if x["tie"])
        worst = max((x["gap_pct"] for x in v), default=0.0)
        lines.append(f"{t}: {len(pred)} predicted, {len(meas)} measured"
                     + (f" ({ties} inside their CIs)" if meas and ties else "")
                     + (f"; largest gap {worst:.2f}%" if v else ""))
    print("\n".join(lines))
    n_pred = sum(1 for x in found if x["kind"] == "predicted")
    print(f"{len(traces)} traces: {n_pred} predicted violations, "
          f"{len(found) - n_pred} measured pairs where the bigger network ran faster")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 1 if n_pred else 0


if __name__ == "__main__":
    sys.exit(main())
