"""A sweep's report: its jumps turned into candidate resolutions, written as jumps.csv,
drops.csv, candidates.csv and sweep.png (`analyze_sweep`).

Detection (`jumps.detect`) knows nothing of files or figures; this module puts its result next
to the candidate policy (`candidates.py`) and the figure (`plot.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from latency_lab.errors import JumpInputError, check_number
from latency_lab.fileio import atomic_path
from latency_lab.sweeps.candidates import DEFAULT_MAX_CANDIDATES
from latency_lab.sweeps.jumps import JumpResult


def candidates(result: JumpResult, neighbours: int = 0, budget_ms: float | None = None,
               min_latency_ms: float | None = None, min_jump_pct: float | None = None,
               max_candidates: int = DEFAULT_MAX_CANDIDATES,
               step_cost=None, latency_ms=None) -> pd.DataFrame:
    """Candidate resolutions of a detected sweep, every proposal kept or dropped with its
    reason: the policy of `latency_lab.sweeps.candidates` (before-jump resolutions and `neighbours`
    each side; dropped when under `min_jump_pct` / `min_latency_ms`, over the budget or with no
    room for one scaling step under it; the best `max_candidates` by jump size kept).
    `latency_ms`: each grid point's latency for the candidates (default: the detected curve's;
    the median when the jumps were found on the floor)."""
    from latency_lab.sweeps.candidates import propose, select

    for name, value in (("--budget-ms", budget_ms), ("--min-latency-ms", min_latency_ms)):
        if value is not None:   # NaN would silently keep or drop every candidate
            check_number(value, name, 0, None, "a latency in ms", JumpInputError, low_open=True)
    if min_jump_pct is not None:
        check_number(min_jump_pct, "--min-jump-pct", 0, None, "an upward jump's size in %",
                     JumpInputError)
    proposals = propose(result.jumps, result.curve.resolution,
                        result.curve.latency_ms if latency_ms is None else latency_ms,
                        neighbours)
    frame = select(proposals, budget_ms, min_latency_ms, min_jump_pct, max_candidates, step_cost)
    return with_decision(frame, result, max_candidates)


def with_decision(frame: pd.DataFrame, result: JumpResult, max_candidates: int) -> pd.DataFrame:
    """Every candidate row says whether the sweep's candidate decision is settled (the same
    rule the adaptive sweep stops on, `adaptive.decide`), and a kept jump whose size ties with
    one left out (inside its 95% interval) says so in its reason."""
    from latency_lab.sweeps.adaptive import decide

    d = decide(result, max_candidates)
    frame = frame.copy()
    frame["decision"] = "settled" if d.settled else d.why
    r = result.curve.resolution
    for k, tied in d.ties.items():
        rows = frame["jump_resolution_before"] == int(r[k])
        names = ", ".join(str(int(r[j])) for j in tied)
        frame.loc[rows, "reason"] = frame.loc[rows, "reason"].astype(str) + (
            f" | tie: the jump after {names} is as large within this jump's 95% interval")
    return frame


# A curve whose median CI half-width is wider than this says nothing about the jumps RBIS
# looks for (+3 to +14% on this host's sweeps, results/cpu/*_jumps): a 3-round sweep with
# +-52% CIs reported a +276% jump, and a capped one at +-10.9% (results/cpu/noisy-capped) a
# +34% jump and six drops from the whole-curve model. Such a curve is reported as too noisy to
# judge. The lattice detector (steps only where the network's feature maps grow) goes further:
# on real busy sweeps at +-10.6% and +-11.7% it still found 4 and 1 of the 7 large steps and
# nothing off the lattice, at >= 12% 0.4 of 7 (results/benchmarks/busy_jumps_benchmark.md).
NOISY_CI_PCT = 10.0
NOISY_CI_PCT_LATTICE = 12.0


def noise_verdict(frame: pd.DataFrame, limit_pct: float = NOISY_CI_PCT) -> str:
    """'' for a curve the detector can judge; else why not, in one line (CIs needed)."""
    cols = {"latency_ms", "ci_low_ms", "ci_high_ms"}
    if not cols <= set(frame.columns):
        return ""
    f = frame[list(cols)].apply(pd.to_numeric, errors="coerce").dropna()
    f = f[f["latency_ms"] > 0]
    if f.empty:
        return ""
    half = 100 * (f["ci_high_ms"] - f["ci_low_ms"]) / 2 / f["latency_ms"]
    med = float(half.median())
    if med <= limit_pct:
        return ""
    return (f"too noisy to judge: the median CI is +-{med:.1f}% (widest +-{float(half.max()):.0f}"
            f"%), wider than the jumps a search looks for (+3 to +14% on this host), so no "
            f"jumps or candidates are reported; measure longer (run the sweep again: it goes on "
            f"from the store) or on a quieter machine")


@dataclass
class SweepAnalysis:
    result: JumpResult
    candidates: pd.DataFrame
    files: dict[str, Path]
    title: str = ""
    verdict: str = ""     # why the curve could not be judged ('' when it could)

    @property
    def jumps(self) -> pd.DataFrame:
        return self.result.jumps

    @property
    def drops(self) -> pd.DataFrame:
        return self.result.drops


def analyze_sweep(frame: pd.DataFrame, out_dir: str | Path, neighbours: int = 0,
                  budget_ms: float | None = None, min_latency_ms: float | None = None,
                  plot: bool = True, title: str | None = None,
                  min_jump_pct: float | None = None,
                  max_candidates: int = DEFAULT_MAX_CANDIDATES, step_cost=None,
                  curve: str = "auto", **detector_options) -> SweepAnalysis:
    """Detect jumps in a sweep and write out_dir/{jumps,drops,candidates}.csv and sweep.png
    (candidates: see `candidates`; `step_cost` from `latency_lab.sweeps.candidates.network_step_cost`).
    `curve`: "median", "floor" (the 10th percentile of each point's raw samples) or "auto"
    (when the medians' CIs say the machine was busy, whichever of the two is less noisy
    about its fit; `latency_lab.sweeps.floor`). A curve too noisy to judge (`noise_verdict`)
    reports no jumps, drops or candidates, and says so."""
    from latency_lab.sweeps.floor import detect_best

    result, used = detect_best(frame, curve, **detector_options)
    limit = NOISY_CI_PCT_LATTICE if result.method == "lattice" else NOISY_CI_PCT
    verdict = noise_verdict(frame, limit) if detector_options.get("use_ci", True) else ""
    if verdict:    # what the detector saw in the noise is no finding: nothing is reported
        from dataclasses import replace

        result = replace(result, jumps=result.jumps.iloc[0:0], drops=result.drops.iloc[0:0])
    median = None
    if used == "floor":
        by_res = dict(zip(frame["resolution"].astype(int), frame["latency_ms"]))
        median = [by_res[int(r)] for r in result.curve.resolution]
    cands = candidates(result, neighbours, budget_ms, min_latency_ms, min_jump_pct,
                       max_candidates, step_cost, median)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"jumps": out / "jumps.csv", "drops": out / "drops.csv",
             "candidates": out / "candidates.csv"}
    for key, table in (("jumps", result.jumps), ("drops", result.drops), ("candidates", cands)):
        with atomic_path(files[key]) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
    title = title or sweep_title(frame)
    if plot:
        from latency_lab.sweeps.plot import plot_sweep

        files["plot"] = plot_sweep(result, cands, out / "sweep.png", title=title,
                                   verdict=verdict, budget_ms=budget_ms,
                                   medians=frame if used == "floor" else None)
    return SweepAnalysis(result, cands, files, title, verdict)


def sweep_title(frame: pd.DataFrame, when: str | None = None) -> str:
    """The figure's title: the network, the hardware and device (or runtime) the sweep names,
    and the date (`when`, default today: the day the curve was measured or analysed)."""
    from datetime import date

    parts = []
    for col in ("network", "hardware", "device", "runtime", "precision"):
        if col in frame.columns and frame[col].notna().any():
            v = str(frame[col].dropna().iloc[0])
            if v and v not in parts:
                parts.append(v)
        if len(parts) >= 3:
            break
    parts.append(when or date.today().isoformat())
    return " · ".join(parts)
