"""The floor of a point's samples: what a busy machine's sweep finds its jumps on.

On a shared machine every run of a network is its own cost plus whatever the other jobs take
from it while it runs: interference only ever adds time. At load 5-12 on this 2-core host
(results/cpu/busy/) a visit's median was 1-6x the quiet latency, so a point's median wandered
by +-5-35% (its 95% CI over 5-20 rounds) and no earlier detector found the steps in it. The
lower tail of the raw samples -- the runs that went through untouched -- stays at the
network's own cost while there are such runs: on the busy sweep beside the machine's own load
(3.0-9.1) the 10th percentile of each point's raw samples lay within 1.9% of a quiet sweep's
shape (after a smooth trend), the drift-corrected median 3.6% off.

So a sweep also records `floor_ms`, the FLOOR_QUANTILE of its raw samples (not drift-corrected:
the drift factors come from visit medians, and dividing a visit's fast runs by a slow
median's factor would push them below the machine's real speed). When the medians' CIs say
the machine was busy (median half-width over BUSY_CI_PCT), the jump report fits both curves
and reads the one whose noise about the fit is smaller (`detect_best`): the floor while some
runs still go through untouched (load 3-9 here: sigma 1.4-5.5% against the medians'
3.3-13%), the median when the load is so high that none does (load 6-13: the floor 1.2-2.7x
noisier). The floor's noise is the curve's own scatter about the detector's model (a
bootstrap CI of a low quantile over rounds whose load changed says more about the load than
about the floor). On a quiet machine the median, with its CIs, is read.
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


def relative_noise(result) -> float:
    """The median noise of a detection result (its sigma, after any rescaling to the fit's
    residuals) relative to the latency: what a step of a given % must beat."""
    return float(np.median(result.sigma_ms / result.curve.latency_ms))


def detect_best(frame, curve: str = "auto", **detector_options):
    """Detect on the curve `curve` names; with "auto" on a busy sweep, on both the median and
    the floor, and keep the result with the smaller relative noise. Returns (result, which)."""
    from latency_lab.sweeps.jumps import detect

    table, used = choose(frame, curve)
    result = detect(table, **detector_options)
    if curve == "auto" and used == "floor":
        median = detect(frame, **detector_options)
        if relative_noise(median) <= relative_noise(result):
            median.notes.append(f"read on the medians: their noise (+-{100 * relative_noise(median):.1f}%"
                                f") is below the floor's (+-{100 * relative_noise(result):.1f}%)")
            return median, "median"
        result.notes.append(f"jumps found on the floor ({100 * FLOOR_QUANTILE:.0f}th percentile of "
                            f"each point's raw samples): its noise (+-"
                            f"{100 * relative_noise(result):.1f}%) is below the medians' (+-"
                            f"{100 * relative_noise(median):.1f}%)")
    elif used == "floor":
        result.notes.append(f"jumps found on the floor ({100 * FLOOR_QUANTILE:.0f}th percentile of "
                            f"each point's raw samples)")
    return result, used
