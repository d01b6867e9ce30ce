"""The floor of a point's samples: what a busy machine's sweep finds its jumps on.

On a shared machine every run of a network is its own cost plus whatever the other jobs take
from it while it runs: interference only ever adds time. At load 5-12 on this 2-core host
(results/cpu/busy/) a visit's median was 1-6x the quiet latency, so a point's median wandered
by +-10-25% (its 95% CI over 10-20 rounds) and no detector found the steps in it. The lower
tail of the raw samples -- the runs that went through untouched -- stays at the network's own
cost: the 10th percentile of each point's raw samples lay within 1.9% of a quiet sweep's
shape (after a smooth trend) where the drift-corrected median lay 3.6-11% off.

So a sweep also records `floor_ms`, the FLOOR_QUANTILE of its raw samples (not drift-corrected:
the drift factors come from visit medians, and dividing a visit's fast runs by a slow
median's factor would push them below the machine's real speed), and the jump report uses
the floor instead of the median when the median's CIs say the machine was busy (median
half-width over BUSY_CI_PCT). Its noise is then the curve's own scatter about the detector's
model (a bootstrap CI of a low quantile over rounds whose load changed says more about the
load than about the floor). On a quiet machine the floor and the median are the same curve
and the median, with its CIs, is kept.
"""

from __future__ import annotations

import numpy as np

FLOOR_QUANTILE = 0.10   # 10th percentile: min and 5th gave the same curves, 25th was 2x worse
BUSY_CI_PCT = 2.0       # median CI half-width (%) over which a sweep counts as busy
CURVES = ("auto", "median", "floor")


def floor_ms(samples_ms) -> float:
    """FLOOR_QUANTILE of raw samples (NaN without samples)."""
    x = np.asarray(samples_ms, dtype=float)
    return float(np.quantile(x, FLOOR_QUANTILE)) if x.size else float("nan")


def busy(ci_halfwidth_pct) -> bool:
    """Whether CI half-widths (% of the median, one per point) say the machine was busy."""
    x = np.asarray(ci_halfwidth_pct, dtype=float)
    x = x[np.isfinite(x)]
    return bool(x.size) and float(np.median(x)) > BUSY_CI_PCT


def choose(frame, curve: str = "auto"):
    """The table the detector reads, and which curve it is ("median" or "floor"): `frame` as it
    is, or its floor_ms as latency_ms without CIs. "auto" takes the floor when the frame has
    one on every measured row and its median CIs are over BUSY_CI_PCT."""
    if curve not in CURVES:
        from latency_lab.errors import JumpInputError

        raise JumpInputError(f"unknown curve {curve!r} (one of {', '.join(CURVES)})")
    has = "floor_ms" in frame.columns
    if curve == "median" or (curve == "auto" and not has):
        return frame, "median"
    measured = frame["latency_ms"].notna()
    if not has or frame.loc[measured, "floor_ms"].isna().any():
        if curve == "floor":
            from latency_lab.errors import JumpInputError

            raise JumpInputError("--curve floor: the sweep has no floor_ms column (a sweep "
                                 "written before floors were recorded, or a replayed one)")
        return frame, "median"
    if curve == "auto":
        half = 100 * (frame["ci_high_ms"] - frame["ci_low_ms"]) / 2 / frame["latency_ms"] \
            if {"ci_low_ms", "ci_high_ms"} <= set(frame.columns) else None
        if half is None or not busy(half[measured]):
            return frame, "median"
    out = frame.drop(columns=[c for c in ("ci_low_ms", "ci_high_ms") if c in frame.columns])
    out = out.assign(latency_ms=frame["floor_ms"])
    return out, "floor"
