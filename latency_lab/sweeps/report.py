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
from latency_lab.sweeps.jumps import JumpResult, detect


def candidates(result: JumpResult, neighbours: int = 0, budget_ms: float | None = None,
               min_latency_ms: float | None = None, min_jump_pct: float | None = None,
               max_candidates: int = DEFAULT_MAX_CANDIDATES,
               step_cost=None) -> pd.DataFrame:
    """Candidate resolutions of a detected sweep, every proposal kept or dropped with its
    reason: the policy of `latency_lab.sweeps.candidates` (before-jump resolutions and `neighbours`
    each side; dropped when under `min_jump_pct` / `min_latency_ms`, over the budget or with no
    room for one scaling step under it; the best `max_candidates` by jump size kept)."""
    from latency_lab.sweeps.candidates import propose, select

    for name, value in (("--budget-ms", budget_ms), ("--min-latency-ms", min_latency_ms)):
        if value is not None:   # NaN would silently keep or drop every candidate
            check_number(value, name, 0, None, "a latency in ms", JumpInputError, low_open=True)
    if min_jump_pct is not None:
        check_number(min_jump_pct, "--min-jump-pct", 0, None, "an upward jump's size in %",
                     JumpInputError)
    proposals = propose(result.jumps, result.curve.resolution, result.curve.latency_ms,
                        neighbours)
    return select(proposals, budget_ms, min_latency_ms, min_jump_pct, max_candidates, step_cost)


# A curve whose median CI half-width is wider than this says nothing about the jumps RBIS
# looks for (+3 to +14% on this host's sweeps, results/cpu/*_jumps): a 3-round sweep with
# +-52% CIs reported a +276% jump. Such a curve is reported as too noisy to judge.
NOISY_CI_PCT = 10.0


def noise_verdict(frame: pd.DataFrame) -> str:
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
    if med <= NOISY_CI_PCT:
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
                  **detector_options) -> SweepAnalysis:
    """Detect jumps in a sweep and write out_dir/{jumps,drops,candidates}.csv and sweep.png
    (candidates: see `candidates`; `step_cost` from `latency_lab.sweeps.candidates.network_step_cost`)."""
    result = detect(frame, **detector_options)
    verdict = noise_verdict(frame) if detector_options.get("use_ci", True) else ""
    if verdict:    # what the detector saw in the noise is no finding: nothing is reported
        from dataclasses import replace

        result = replace(result, jumps=result.jumps.iloc[0:0], drops=result.drops.iloc[0:0])
    cands = candidates(result, neighbours, budget_ms, min_latency_ms, min_jump_pct,
                       max_candidates, step_cost)
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
                                   verdict=verdict, budget_ms=budget_ms)
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
