"""Sweeps that measure where the candidate decision is uncertain: the protocol's planner hook
(latency_lab.measure.protocol), drift correction over partial rounds, and the decision and
planner of latency_lab.sweeps.adaptive."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from latency_lab.measure.drift import drift_factors
from latency_lab.measure.protocol import Protocol, RoundPlan, measure_points
from latency_lab.measure.store import Store
from latency_lab.network.presets import load_network
from latency_lab.sweeps import adaptive as A
from latency_lab.sweeps import jumps as J

GRID = np.arange(160, 401, 4)


@pytest.fixture(scope="module")
def b0():
    return load_network("efficientnet-b0")


def steps_curve(r, steps_pct):
    y = 2.0 + 4e-4 * np.asarray(r, float) ** 2
    for at, pct in steps_pct.items():
        y = y * np.where(np.asarray(r) > at, 1 + pct / 100, 1.0)
    return y


# -- the protocol's hook --------------------------------------------------------------------

class Recorder:
    """A planner that visits everything for `full` rounds, then only `subset`, then stops."""

    def __init__(self, full, subset, stop_after):
        self.full, self.subset, self.stop_after, self.calls = full, subset, stop_after, 0

    def __call__(self, measurements, open_points):
        self.calls += 1
        self.seen = (dict(measurements), open_points)
        if self.calls > self.stop_after:
            return RoundPlan(stop="decided", note="done")
        if self.calls > self.full:
            return RoundPlan(visit=frozenset(self.subset))
        return RoundPlan()


@pytest.mark.slow
def test_a_planner_picks_each_rounds_points_and_stops_them_all(tmp_path, tiny, curve_device):
    dev = curve_device(noise=0.01, seed=3)
    grid = list(range(160, 240, 8))
    planner = Recorder(full=3, subset={0, 4}, stop_after=6)
    proto = Protocol(runs_per_visit=3, min_rounds=50, max_rounds=60)
    with Store(tmp_path / "s.sqlite") as store:
        out = measure_points(dev, [(tiny, r) for r in grid], store, proto, planner=planner)
        assert {m.stop_reason for m in out} == {"decided"}
        rounds = [m.n_rounds for m in out]
        # 3 full rounds, then 3 rounds of points 0 and 4 only
        assert rounds == [6, 3, 3, 3, 6, 3, 3, 3, 3, 3]
        assert len(dev.calls) == 3 * len(grid) + 3 * 2
        measurements, open_points = planner.seen
        assert sorted(measurements) == list(range(len(grid))) and len(open_points) == len(grid)
        # a point stopped as decided missed its CI target: the next run measures it further
        again = measure_points(dev, [(tiny, r) for r in grid], store,
                               Protocol(runs_per_visit=3, min_rounds=8, max_rounds=8))
        assert [m.n_rounds for m in again] == [8] * len(grid)


@pytest.mark.slow
def test_partial_rounds_keep_the_drift_correction(tmp_path, tiny, curve_device):
    """A machine up to 30% slower or faster (a slow sine over the run): after 3 full rounds
    only points 0-4 are visited. Corrected, every point sits at the same factor of its true
    latency (the run's typical speed) within 3%, the visited and the others alike; raw, the
    drift puts them apart."""
    drift = lambda call: 1 + 0.3 * math.sin(call / 15)  # noqa: E731
    dev = curve_device(noise=0.005, seed=1, drift=drift)
    grid = list(range(160, 240, 8))
    planner = Recorder(full=3, subset={0, 1, 2, 3, 4}, stop_after=12)
    with Store(tmp_path / "s.sqlite") as store:
        out = measure_points(dev, [(tiny, r) for r in grid], store,
                             Protocol(runs_per_visit=3, min_rounds=50, max_rounds=60),
                             planner=planner)
    corrected = np.array([m.latency_ms / dev.true_ms(m.resolution) for m in out])
    raw = np.array([m.raw_stats.median_ms / dev.true_ms(m.resolution) for m in out])
    assert corrected.max() / corrected.min() < 1.03
    assert raw.max() / raw.min() > 1.1


def test_drift_factors_follow_the_drift_over_partial_rounds():
    """3 full rounds of 40 points, then 20 rounds of 6 of them: the factors still follow the
    drift (the window is counted in visits, which take the same time whatever points)."""
    rng = np.random.default_rng(0)
    levels = np.linspace(10, 40, 40)
    ids, times, meds, t = [], [], [], 0
    drift = lambda t: 1 + 0.25 * math.sin(t / 30)  # noqa: E731
    for rnd in range(23):
        pts = rng.permutation(40) if rnd < 3 else rng.permutation([3, 9, 15, 21, 27, 33])
        for p in pts:
            ids.append(p), times.append(t)
            meds.append(levels[p] * drift(t) * math.exp(0.01 * rng.standard_normal()))
            t += 1
    f = drift_factors(ids, times, meds)
    truth = np.array([drift(t) for t in times])
    late = np.array(times) >= 120
    assert np.corrcoef(np.log(f[late]), np.log(truth[late]))[0, 1] > 0.97


# -- the decision -------------------------------------------------------------------------

def frame(y, half_pct):
    half = y * half_pct / 100
    return pd.DataFrame({"resolution": GRID, "latency_ms": y, "ci_low_ms": y - half,
                         "ci_high_ms": y + half})


def test_clear_jumps_settle_the_decision(b0):
    y = steps_curve(GRID, {192: 10.0, 224: 14.0, 256: 9.0, 288: 9.5, 320: 5.0})
    y = y * (1 + 0.003 * np.random.default_rng(0).normal(size=len(y)))
    d = A.decide(J.detect(frame(y, 0.6), network=b0), max_candidates=4)
    assert d.settled and not d.ambiguous and "settled" in d.why
    r = GRID
    assert sorted(int(r[k]) for k in d.kept) == [192, 224, 256, 288]


def test_a_borderline_step_that_could_change_the_candidates_is_ambiguous(b0):
    """Two clear jumps and one at z about 3 (its bar): with max 4 candidates, it could come in
    or stay out, so the decision is not settled and the planner measures beside it."""
    for seed in range(40):
        y = steps_curve(GRID, {192: 12.0, 224: 14.0, 320: 4.0})
        y = y * (1 + 0.012 * np.random.default_rng(seed).normal(size=len(y)))
        res = J.detect(frame(y, 2.4), network=b0)
        z = {int(res.curve.resolution[g.k]): g.z for g in res.tests}
        if abs(z[320] - 3.0) < 0.5:
            break
    else:
        pytest.fail("no curve put the step after 320 at z 2.5..3.5")
    d = A.decide(res, max_candidates=4)
    assert not d.settled and list(GRID[list(d.ambiguous)]).count(320) == 1
    assert "320->324" in d.why
    # the planner, after the full rounds: the points beside 320 and the kept jumps' sides
    planner = A.DecisionPlanner(b0, full_rounds=0)
    fake = {i: _Fixed(int(r), y[i], y[i] * 0.024) for i, r in enumerate(GRID)}
    plan = planner(fake, frozenset(fake))
    chosen = sorted(int(GRID[i]) for i in plan.visit)
    assert {312, 316, 320, 324, 328, 332} <= set(chosen)
    assert {192, 196, 224, 228} <= set(chosen) and 272 not in chosen
    assert not plan.stop and planner.last is not None and not planner.last.settled


class _Fixed:
    """A measurement stand-in with fixed statistics (median, CI half-width)."""

    def __init__(self, resolution, median, half):
        from latency_lab.measure.stats import Stats

        self.resolution, self.measured, self.n_rounds = resolution, True, 5
        self.samples_ms = ()   # none: the medians are read, whatever their CIs
        self.stats = Stats(40, median, median, median, 0.0, median, median, median - half,
                           median + half, 0.95)


def test_the_planner_waits_for_full_rounds_and_stops_when_settled(b0):
    y = steps_curve(GRID, {192: 10.0, 224: 14.0, 256: 8.0, 288: 9.0})
    fake = {i: _Fixed(int(r), y[i], y[i] * 0.005) for i, r in enumerate(GRID)}
    planner = A.DecisionPlanner(b0)
    for m in fake.values():
        m.n_rounds = A.FULL_ROUNDS - 1
    assert planner(fake, frozenset(fake)) == RoundPlan()
    for m in fake.values():
        m.n_rounds = A.FULL_ROUNDS
    plan = planner(fake, frozenset(fake))
    assert plan.stop == A.DECIDED and planner.decided_at_round == A.FULL_ROUNDS


def test_a_busy_sweep_is_read_on_the_less_noisy_of_median_and_floor(b0):
    """The planner's table has the medians with their CIs and, from the raw samples, the
    floors; on a busy sweep (CIs over +-2%) the detector reads whichever of the two scatters
    less about its fit: the floor when some runs go through untouched, the median when none
    does (every run of a visit slowed alike)."""
    from latency_lab.sweeps.floor import detect_best

    rng = np.random.default_rng(0)
    y = steps_curve(GRID, {192: 10.0, 224: 12.0, 288: 9.0})
    untouched, all_slowed = {}, {}
    for i, r in enumerate(GRID):
        # half the runs untouched, the others slowed by 0-200%: a noisy median, a clean floor
        s = y[i] * (1 + (rng.random(40) < 0.5) * rng.exponential(1.0, 40))
        untouched[i] = _Fixed(int(r), float(np.median(s)), 0.1 * float(np.median(s)))
        untouched[i].samples_ms = tuple(s)
        # every run of a visit slowed by the visit's own factor: the floor is as noisy
        f = np.repeat(1 + rng.exponential(0.8, 5), 8) * (1 + 0.02 * rng.normal(size=40))
        s2 = y[i] * f
        all_slowed[i] = _Fixed(int(r), y[i] * 1.8 * (1 + 0.01 * rng.normal()), 0.06 * y[i])
        all_slowed[i].samples_ms = tuple(s2)
    table = A.curve_of(untouched.values())
    assert np.allclose(table["floor_ms"], [np.quantile(m.samples_ms, 0.1)
                                           for m in untouched.values()])
    res, used = detect_best(table, network=b0)
    assert used == "floor" and {192, 224, 288} <= set(res.jumps["resolution_before"])
    res, used = detect_best(A.curve_of(all_slowed.values()), network=b0)
    assert used == "median" and any("read on the medians" in n for n in res.notes)
    # no raw samples (a replayed sweep): the medians only
    assert "floor_ms" not in A.curve_of(_Fixed(int(r), y[i], 0.1 * y[i])
                                        for i, r in enumerate(GRID))
