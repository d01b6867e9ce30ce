"""Statistics of samples and the confidence intervals of the median."""

import numpy as np
import pytest

from latency_lab.measure.stats import median_ci_order, median_ci_rounds, summarize


def test_summary_statistics_of_known_samples():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.count == 5 and s.min_ms == 1.0 and s.median_ms == 3.0 and s.mean_ms == 22.0
    assert s.ci_low_ms <= 3.0 <= s.ci_high_ms


@pytest.mark.parametrize("n", [9, 31, 200])
def test_order_statistic_ci_covers_the_true_median(n):
    rng = np.random.default_rng(n)
    true = np.log(2)  # median of Exp(1), a skewed distribution like latencies
    hits = sum(lo <= true <= hi for lo, hi in
               (median_ci_order(rng.exponential(1, n)) for _ in range(1000)))
    assert 0.93 <= hits / 1000 <= 0.995


def test_round_bootstrap_is_wider_when_rounds_drift():
    rng = np.random.default_rng(0)
    levels = 100 * (1 + 0.1 * rng.standard_normal(12))   # each round at its own level
    rounds = [lv + rng.standard_normal(8) for lv in levels]
    flat = np.concatenate(rounds)
    lo_iid, hi_iid = median_ci_order(flat)
    lo_r, hi_r = median_ci_rounds(rounds)
    assert (hi_r - lo_r) > 2 * (hi_iid - lo_iid)


def test_summarize_uses_rounds_when_given():
    """Five rounds at five levels: with rounds the CI is the cluster bootstrap's (whole rounds
    resampled, so it spans the round levels, [10, 12]); without, the order-statistic interval
    of 40 iid-looking samples ([10.5, 11.5]). Ignoring the rounds would give the narrower one."""
    x = [10.0] * 8 + [12.0] * 8 + [11.0] * 8 + [10.5] * 8 + [11.5] * 8
    r = [i // 8 for i in range(40)]
    with_rounds, without = summarize(x, r), summarize(x)
    groups = [np.asarray(x[i * 8:(i + 1) * 8]) for i in range(5)]
    assert (with_rounds.ci_low_ms, with_rounds.ci_high_ms) == median_ci_rounds(groups)
    assert (without.ci_low_ms, without.ci_high_ms) == median_ci_order(np.asarray(x))
    assert (with_rounds.ci_high_ms - with_rounds.ci_low_ms
            > 1.5 * (without.ci_high_ms - without.ci_low_ms))


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


def test_binomial_quantile_is_scipys_without_importing_scipy():
    """`median_ci_order`'s binomial quantile, exact in integers, equals scipy's at every
    level a CI uses (scipy.stats is no longer imported by the protocol: 0.66 s)."""
    from scipy.stats import binom

    from latency_lab.measure.stats import binom_ppf_half

    for n in list(range(0, 400)) + [1000, 4097]:
        for q in (0.0005, 0.005, 0.025, 0.05, 0.1, 0.25):
            assert binom_ppf_half(q, n) == int(binom.ppf(q, n, 0.5)), (q, n)


def test_bootstrap_of_rounds_of_different_lengths_is_the_median_of_each_resample():
    """Longer visits where samples are cheap give rounds of different lengths; their
    resamples' medians (vectorised: weighted order statistics) are exactly those of the
    concatenated samples, ties and odd and even counts included."""
    from latency_lab.measure.stats import _weighted_medians

    for seed in range(10):
        rng = np.random.default_rng(seed)
        rounds = [np.round(rng.normal(10, 1, rng.integers(1, 40)), 1)
                  for _ in range(rng.integers(5, 30))]
        picks = rng.integers(0, len(rounds), size=(300, len(rounds)))
        expect = [np.median(np.concatenate([rounds[i] for i in p])) for p in picks]
        assert np.array_equal(_weighted_medians(rounds, picks), expect)
    lo, hi = median_ci_rounds([np.full(8, 5.0), np.full(20, 5.0), np.full(9, 5.0),
                               np.full(12, 5.0), np.full(8, 5.0)])
    assert lo == hi == 5.0
