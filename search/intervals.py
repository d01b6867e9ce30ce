"""Intervals of evaluated values: the 95% CI of a mean over repeats or seeds, pooled seed
noise, and whether two intervals overlap (a tie) or not (separated).

Training noise is what decides whether one network beats another at the sizes a CPU trains:
on Fashion-MNIST at 32 px (10,000 images, 3 epochs) three seeds of mbconv-tiny gave 81.0,
82.6 and 81.4% (issue 24), while a single step changed the accuracy by 0.3 points. A value
of one training has no spread of its own; the spread of the same recipe on other networks
(`pooled_sd`) is the best estimate of it, since seed noise depends on the recipe and the data
much more than on a small change of the network (the assumption of a one-way ANOVA).
"""

from __future__ import annotations

import math
from typing import Sequence


def t_quantile(dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """Mean and the 95% Student-t CI of the mean (None for a single value)."""
    import numpy as np

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    half = t_quantile(len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int] | None:
    """(pooled standard deviation, degrees of freedom) over the groups with two values or
    more: sqrt(sum of squared deviations from each group's mean / sum of (n - 1)); None when
    no group has two."""
    ss, dof = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            m = sum(g) / len(g)
            ss += sum((x - m) ** 2 for x in g)
            dof += len(g) - 1
    if dof == 0:
        return None
    return math.sqrt(ss / dof), dof


def pooled_ci(values: Sequence[float], sd: float, dof: int) -> tuple[float, float]:
    """95% CI of the mean of `values` given the pooled seed noise (sd, dof)."""
    mean = sum(values) / len(values)
    half = t_quantile(dof) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals share a point (two values inside each other's noise)."""
    return a[0] <= b[1] and b[0] <= a[1]


def verdict(value: float, baseline: tuple[float, float] | None) -> str:
    """'win' above the baseline's interval, 'tie' inside it, 'below' under it; 'no interval'
    when the baseline has none (one evaluation without a spread)."""
    if baseline is None:
        return "no interval"
    if value > baseline[1]:
        return "win"
    return "tie" if value >= baseline[0] else "below"


__all__ = ["mean_ci", "pooled_sd", "pooled_ci", "overlap", "verdict", "t_quantile"]
