"""Robust statistics of latency samples, and a confidence interval of the median.

Samples taken in rounds (see `protocol.py`) are correlated within a round: the machine's state
drifts between rounds, not between consecutive runs. The CI of the median is therefore a
cluster bootstrap over rounds when there are enough rounds, and the distribution-free
order-statistic (binomial) interval otherwise.

No scipy here: its `stats` package took 0.66 s to import, more than everything else the
offline search imports, for one binomial quantile (`binom_ppf_half`, exact in integers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

MIN_ROUNDS_FOR_BOOTSTRAP = 5
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Stats:
    count: int
    min_ms: float
    median_ms: float
    mean_ms: float
    std_ms: float
    p5_ms: float
    p95_ms: float
    ci_low_ms: float
    ci_high_ms: float
    confidence: float

    @property
    def ci_halfwidth_rel(self) -> float:
        """Half the CI's width relative to the median (0.01 = +-1%)."""
        return (self.ci_high_ms - self.ci_low_ms) / 2 / self.median_ms if self.median_ms else float("inf")

    def to_dict(self) -> dict:
        return asdict(self)


def binom_ppf_half(q: float, n: int) -> int:
    """The q-quantile of Binomial(n, 1/2): the smallest k with P(X <= k) >= q, as
    `scipy.stats.binom.ppf(q, n, 0.5)` gives it (tests compare both), computed exactly:
    sum C(n, i) for i <= k against q * 2**n in integers (q a float, so exactly a fraction)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 < q < 1.0:
        return n if q >= 1.0 else -1
    f = Fraction(q)
    target = f.numerator << n          # P(X <= k) >= q  <=>  den * sum C(n, i) >= num * 2**n
    den = f.denominator
    term = total = 1                   # C(n, 0)
    k = 0
    while total * den < target:
        term = term * (n - k) // (k + 1)
        k += 1
        total += term
    return k


def median_ci_order(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial(n, 1/2))."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    # 1-based ranks j and n - j + 1 with j the alpha/2 quantile of Binomial(n, 1/2).
    j = binom_ppf_half((1 - confidence) / 2, n)
    lo, hi = (j - 1, n - j) if j >= 1 else (0, n - 1)
    return float(x[lo]), float(x[hi])


def median_ci_rounds(rounds: list[np.ndarray], confidence: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Cluster-bootstrap CI of the median: resample whole rounds with replacement."""
    rng = np.random.default_rng(seed)
    k = len(rounds)
    lengths = np.array([len(r) for r in rounds])
    flat = np.concatenate(rounds)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    picks = rng.integers(0, k, size=(BOOTSTRAP_RESAMPLES, k))
    if np.all(lengths == lengths[0]):
        m = lengths[0]
        idx = starts[picks][..., None] + np.arange(m)
        medians = np.median(flat[idx.reshape(BOOTSTRAP_RESAMPLES, -1)], axis=1)
    else:
        medians = _weighted_medians(rounds, picks)
    alpha = 1 - confidence
    lo, hi = np.quantile(medians, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _weighted_medians(rounds: list[np.ndarray], picks: np.ndarray) -> np.ndarray:
    """Median of each resample's concatenated rounds when rounds differ in length (visits
    longer where samples are cheap): a resample is its rounds' samples, each weighted by how
    often its round was picked, so its median is a weighted order statistic of all samples
    sorted once. Exactly `np.median(np.concatenate(...))` of each resample (tested), without
    the Python loop over 1000 resamples that took most of a sweep's time outside the device."""
    k = len(rounds)
    flat = np.concatenate(rounds)
    owner = np.repeat(np.arange(k), [len(r) for r in rounds])
    order = np.argsort(flat, kind="stable")
    xs, owner = flat[order], owner[order]
    counts = (picks[:, :, None] == np.arange(k)).sum(axis=1)        # resample x round
    cum = np.cumsum(counts[:, owner], axis=1)                         # resample x sample
    n = cum[:, -1]
    lo = (cum <= ((n - 1) // 2)[:, None]).sum(axis=1)                # 0-based ranks
    hi = (cum <= (n // 2)[:, None]).sum(axis=1)
    return (xs[lo] + xs[hi]) / 2


def summarize(samples, rounds=None, confidence: float = 0.95) -> Stats:
    """Statistics of `samples` (ms); `rounds[i]` is the round sample i was taken in, if known."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    if rounds is not None and len(set(rounds)) >= MIN_ROUNDS_FOR_BOOTSTRAP:
        r = np.asarray(rounds)
        groups = [x[r == k] for k in np.unique(r)]
        lo, hi = median_ci_rounds(groups, confidence)
    else:
        lo, hi = median_ci_order(x, confidence)
    med = float(np.median(x))
    return Stats(
        count=int(x.size),
        min_ms=float(x.min()),
        median_ms=med,
        mean_ms=float(x.mean()),
        std_ms=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        p5_ms=float(np.percentile(x, 5)),
        p95_ms=float(np.percentile(x, 95)),
        ci_low_ms=min(lo, med),
        ci_high_ms=max(hi, med),
        confidence=confidence,
    )
