"""RBIS against compound scaling, trained longer with seeds: is the difference beyond noise?

The thesis's headline (its Table 5.2): at the same latency budget the network RBIS finds is
more accurate than compound scaling's (EfficientNet-B1 budget: 79.23 vs 78.7% on ImageNet,
/work/shared/rbis-method.md). Here: the winners of one `latency-lab compare` (search with a
cheap evaluator) trained again with a longer recipe and K seeds (`accuracy evaluate
DIR/compare.json#METHOD --accuracy train:...,seeds=K --json > DIR/long-METHOD.json`), and the
baseline the same way. This script reads those files and the compare's latencies and writes
DIR/verdict.{md,json}: each network's mean with its 95% Student-t interval over its seeds,
and every difference against compound scaling and against the baseline with its 95% Welch
interval (unequal variances, Welch-Satterthwaite degrees of freedom); a difference is beyond
noise when that interval excludes zero, a tie otherwise.
Usage: python benchmarks/rbis_vs_compound.py DIR [--methods baseline,rbis,compound]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def welch(a: list[float], b: list[float]) -> dict:
    """Mean difference a - b with its 95% Welch interval and degrees of freedom."""
    from scipy import stats

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "ci": [diff, diff], "dof": math.inf, "beyond_noise": diff != 0}
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof)) * se
    return {"diff": diff, "ci": [diff - half, diff + half], "dof": dof,
            "beyond_noise": bool(diff - half > 0 or diff + half < 0)}


def analyse(folder: Path, methods: list[str]) -> dict:
    compare = json.loads((folder / "compare.json").read_text())
    rows = {}
    for m in methods:
        long = json.loads((folder / f"long-{m}.json").read_text())
        draws = long["details"]["seed_values"]
        c = compare["methods"][m]
        rows[m] = {"value": long["value"], "ci": long["ci"], "seeds": draws, "n": long["n"],
                   "latency_ms": c["latency_ms"], "resolution": c["resolution"],
                   "fingerprint": c["fingerprint"], "widths": c["widths"], "depths": c["depths"],
                   "search_value": c[compare["metric"]], "evaluator": long["evaluator"],
                   "train_seconds": long["details"].get("train_seconds")}
    pairs = [("rbis", "compound")] if {"rbis", "compound"} <= set(rows) else []
    pairs += [(m, "baseline") for m in rows if m != "baseline" and "baseline" in rows]
    diffs = {f"{a} - {b}": welch(rows[a]["seeds"], rows[b]["seeds"]) for a, b in pairs}
    return {"budget_ms": compare["budget_ms"], "latency_source": compare["latency_source"],
            "search_evaluator": compare["evaluator"], "networks": rows, "differences": diffs}


def write(folder: Path, r: dict) -> None:
    from latency_lab.fileio import write_atomic

    first = next(iter(r["networks"].values()))
    md = [f"# RBIS vs compound scaling, trained longer: budget {r['budget_ms']:g} ms", "",
          f"Searched with `{r['search_evaluator']}`; latency: {r['latency_source']}. Each "
          f"network trained again with `{first['evaluator']}`; mean and 95% Student-t "
          "interval over its seeds.", "",
          "| network | resolution | latency (ms) | widths | depths | top-1 (%) [95%] | seeds "
          "| in the search |", "|---|---|---|---|---|---|---|---|"]
    for m, x in r["networks"].items():
        md.append(f"| {m} | {x['resolution']} | {x['latency_ms']:.4f} | {x['widths']} | "
                  f"{x['depths']} | {x['value']:.2f} [{x['ci'][0]:.2f}, {x['ci'][1]:.2f}] | "
                  f"{', '.join(f'{v:.2f}' for v in x['seeds'])} | {x['search_value']:.2f} |")
    md += ["", "| difference | points | 95% Welch interval | dof | verdict |", "|---|---|---|---|---|"]
    for name, d in r["differences"].items():
        md.append(f"| {name} | {d['diff']:+.2f} | [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] | "
                  f"{d['dof']:.1f} | {'beyond noise' if d['beyond_noise'] else 'a tie'} |")
    write_atomic(folder / "verdict.md", "\n".join(md) + "\n")
    write_atomic(folder / "verdict.json", json.dumps(r, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--methods", default="baseline,rbis,compound")
    args = ap.parse_args()
    r = analyse(args.folder, args.methods.split(","))
    write(args.folder, r)
    print((args.folder / "verdict.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
