"""The machine's common-mode drift during an interleaved run, estimated and divided out.

On a shared host (and on a throttling phone) everything runs 10-30% slower for seconds at a
time. Interleaving (see `protocol.py`) spreads that over all points alike, but each point's
median still wanders with it and its CI stays wide. Because every round visits every point,
the drift is visible as what all points have in common at a moment; a robust two-way model

    log(visit median) = level[point] + drift(time) + noise

is fitted by alternating medians (Tukey's median polish, with drift(time) a running median
over neighbouring visits of *other* points, so that a point never explains itself), and each
visit's samples are divided by exp(drift). The window is `WINDOW` visits (8 each side): a busy
machine drifts within a round, and a round of a 61-point sweep lasts 30-60 s there. On three
busy sweeps of this host (load 5-12, results/cpu/busy/), 16 visits instead of one round
brought two sweeps' point-by-point disagreement (after a smooth trend) from 12-18% to 7-12%
and their median CI half-widths from 13-24% to 9-19%; 8 visits was no better than 12-16.
Counted in visits, the window spans about the same time whichever points a round visits, so
partial rounds (a planner's, `protocol.py`) are corrected as full ones. The factors have
median 1 over the run, so a corrected curve sits at the run's typical speed. With fewer than
`MIN_POINTS` points the common part cannot be told from a point's own behaviour, and no
correction is made.
"""

from __future__ import annotations

import numpy as np

MIN_POINTS = 8
ITERATIONS = 3
WINDOW = 16         # visits (of other points) that estimate the drift at a visit


def drift_factors(point_ids, times, visit_medians_ms, window: int | None = None) -> np.ndarray:
    """Per-visit factors (median 1) by which the machine was slower than usual at that visit.

    `point_ids[i]`, `times[i]`, `visit_medians_ms[i]` describe visit i. `window` is how many
    neighbouring visits (in time) estimate the drift at a visit; default: one round, i.e. the
    `WINDOW`, or one round (the number of distinct points) when that is shorter. Returns ones
    when there are fewer than MIN_POINTS points.
    """
    pid = np.asarray(point_ids)
    n = len(pid)
    points, pidx = np.unique(pid, return_inverse=True)
    if len(points) < MIN_POINTS or n < 2 * MIN_POINTS:
        return np.ones(n)
    order = np.argsort(np.asarray(times, dtype=float), kind="stable")
    lm = np.log(np.asarray(visit_medians_ms, dtype=float))[order]
    p = pidx[order]
    half = max(MIN_POINTS, window or min(WINDOW, len(points))) // 2
    s = np.zeros(n)
    for _ in range(ITERATIONS):
        level = _group_median(lm - s, p, len(points))
        r = lm - level[p]
        s = _running_median_excluding_self(r, p, half)
        s -= np.median(s)
    out = np.empty(n)
    out[order] = np.exp(s)
    return out


def _group_median(x: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    return np.array([np.median(x[groups == g]) for g in range(k)])


def _running_median_excluding_self(r: np.ndarray, p: np.ndarray, half: int) -> np.ndarray:
    n = len(r)
    s = np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        window = r[lo:hi][p[lo:hi] != p[i]]
        s[i] = np.median(window) if window.size else 0.0
    return s
