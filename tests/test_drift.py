"""Drift correction: the fit recovers common drift, never a point's own change, and the
protocol applies it."""

import math

import numpy as np
import pytest

from latency_lab.measure.drift import MIN_POINTS, drift_factors
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.measure.store import Store


def _interleaved(levels, rounds, drift, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    ids, times, meds = [], [], []
    t = 0
    for _ in range(rounds):
        for p in rng.permutation(len(levels)):
            ids.append(p), times.append(t)
            meds.append(levels[p] * drift(t) * math.exp(noise * rng.standard_normal()))
            t += 1
    return np.array(ids), np.array(times), np.array(meds)


def test_common_drift_is_recovered():
    levels = np.linspace(10, 40, 30)
    drift = lambda t: 1 + 0.25 * math.sin(t / 40)
    ids, times, meds = _interleaved(levels, 20, drift)
    f = drift_factors(ids, times, meds)
    truth = np.array([drift(t) for t in times])
    assert np.corrcoef(np.log(f), np.log(truth))[0, 1] > 0.99
    assert np.median(f) == pytest.approx(1.0)
    corrected = meds / f
    for p in range(len(levels)):  # every point's corrected visits agree within a few %
        v = corrected[ids == p]
        assert v.max() / v.min() < 1.1


def test_a_point_cannot_explain_itself():
    """One point's own level change is not drift: the other points do not move."""
    levels = np.linspace(10, 40, 20)
    ids, times, meds = _interleaved(levels, 20, lambda t: 1.0, noise=0.001)
    meds[(ids == 5) & (times > 200)] *= 1.5
    f = drift_factors(ids, times, meds)
    assert np.abs(f - 1).max() < 0.02


def test_too_few_points_get_no_correction():
    ids, times, meds = _interleaved(np.linspace(10, 20, MIN_POINTS - 1), 10,
                                    lambda t: 1 + 0.3 * (t > 30))
    assert (drift_factors(ids, times, meds) == 1).all()


def test_protocol_divides_out_common_drift(tmp_path, tiny, curve_device):
    """A machine 40% slower in alternate stretches: corrected curves are tight and right."""
    slow = lambda call: 1.4 if (call // 23) % 2 else 1.0
    resolutions = list(range(64, 160, 8))
    p = Protocol(runs_per_visit=4, min_rounds=6, max_rounds=6, ci_target_pct=0.5)
    with Store(tmp_path / "s.sqlite") as store:
        ms = measure_points(curve_device(noise=0.002, drift=slow), [(tiny, r) for r in resolutions],
                            store, p)
        stored = [store.measurement(store.latest(m.context.context_key, tiny.fingerprint,
                                                 m.resolution)[0]) for m in ms]
    typical = np.median([m.latency_ms / curve_device.true_ms(m.resolution) for m in ms])
    for m, again in zip(ms, stored):
        assert m.row()["drift_corrected"]
        # the shape is exact up to the run's typical speed, the raw medians are not
        assert m.latency_ms / curve_device.true_ms(m.resolution) == pytest.approx(typical, rel=0.01)
        assert m.stats.ci_halfwidth_rel < m.raw_stats.ci_halfwidth_rel
        assert again.latency_ms == pytest.approx(m.latency_ms)  # the store keeps the factors
