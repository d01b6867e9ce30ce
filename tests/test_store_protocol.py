"""The interleaved protocol and the SQLite store: order, stopping, caps, resume, corruption."""


import pytest

from latency_lab.measure.protocol import Protocol, ProtocolError, measure_points
from latency_lab.measure.store import Store, StoreError

FAST = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=6, ci_target_pct=1.0, time_cap_s=60)


def test_every_point_is_visited_once_per_round_in_shuffled_order(tmp_path, tiny, curve_device):
    dev = curve_device(noise=0.0)
    resolutions = [64, 96, 128, 160, 192]
    with Store(tmp_path / "s.sqlite") as store:
        ms = measure_points(dev, [(tiny, r) for r in resolutions], store, FAST)
    assert [m.resolution for m in ms] == resolutions
    # noiseless: every point meets the CI target as soon as min_rounds is reached
    assert all(m.stop_reason == "ci_target" and m.n_rounds == 3 for m in ms)
    rounds = [dev.calls[i:i + 5] for i in range(0, 15, 5)]
    orders = [[c[1] for c in r] for r in rounds]
    assert all(sorted(o) == resolutions for o in orders)
    assert len({tuple(o) for o in orders}) > 1, "rounds should be shuffled"
    # first visit warms up more than later visits
    first = {c[1]: c[3] for c in reversed(dev.calls)}
    assert set(first.values()) == {FAST.warmup_first_visit}
    assert FAST.warmup_per_visit is None     # unset: the device's warmup_after_switch, 1 here
    assert {c[3] for c in dev.calls[5:]} == {dev.warmup_after_switch} == {1}
    assert ms[0].latency_ms == pytest.approx(curve_device.true_ms(64))


@pytest.mark.parametrize("device_says, protocol_says, runs", [(0, None, 0), (1, None, 1),
                                                             (0, 2, 2), (1, 0, 0)])
def test_the_warmup_after_a_switch_is_the_devices_unless_the_protocol_sets_it(
        tmp_path, tiny, curve_device, device_says, protocol_says, runs):
    dev = curve_device(noise=0.0)
    dev.warmup_after_switch = device_says
    p = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=3, warmup_per_visit=protocol_says)
    with Store(tmp_path / "s.sqlite") as store:      # 41 and 50 ms runs: costly enough
        measure_points(dev, [(tiny, 640), (tiny, 704)], store, p)
    assert [c[3] for c in dev.calls[:2]] == [p.warmup_first_visit] * 2
    assert {c[3] for c in dev.calls[2:]} == {runs}


def test_after_another_network_the_device_warms_up_once(tmp_path, tiny, curve_device):
    """What was measured is a sweep's resize (one network); a switch between networks (a
    search, a LUT's blocks) keeps one warm-up run unless the protocol sets it."""
    from dataclasses import replace

    other = replace(tiny, head_width=tiny.head_width * 2)
    dev = curve_device(noise=0.0)
    dev.warmup_after_switch = 0
    p = Protocol(runs_per_visit=4, min_rounds=4, max_rounds=4)
    with Store(tmp_path / "s.sqlite") as store:
        measure_points(dev, [(tiny, 640), (tiny, 704), (other, 640)], store, p)
    later = dev.calls[3:]
    for prev, call in zip(dev.calls[2:], later):
        assert call[3] == (0 if prev[0] == call[0] else 1), (prev, call)
    assert {c[3] for c in later} == {0, 1}


def test_cheap_runs_keep_their_warmup(tmp_path, tiny, curve_device):
    """Below NO_WARMUP_MIN_MS a resize's fixed first-run cost is a large share of a run (a tiny
    network: +40-70%), so the warm-up stays whatever the device says."""
    from latency_lab.measure.protocol import NO_WARMUP_MIN_MS

    dev = curve_device(noise=0.0)
    dev.warmup_after_switch = 0
    assert curve_device.true_ms(96) < NO_WARMUP_MIN_MS <= curve_device.true_ms(640)
    p = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=3)
    with Store(tmp_path / "s.sqlite") as store:
        measure_points(dev, [(tiny, 64), (tiny, 96)], store, p)
    assert {c[3] for c in dev.calls[2:]} == {1}


@pytest.mark.parametrize("bad", [-1, 1.5, True, 101])
def test_a_warmup_that_cannot_be_is_refused(bad):
    with pytest.raises(ProtocolError, match="warmup_per_visit"):
        Protocol(warmup_per_visit=bad)


def test_noisy_points_stop_at_max_rounds(tmp_path, tiny, curve_device):
    with Store(tmp_path / "s.sqlite") as store:
        (m,) = measure_points(curve_device(noise=0.3), [(tiny, 128)], store, FAST)
    assert m.stop_reason == "max_rounds" and m.n_rounds == 6 and m.stats.count == 24


def test_time_cap_stops_everything(tmp_path, tiny, curve_device):
    p = Protocol(runs_per_visit=2, min_rounds=50, max_rounds=100, time_cap_s=1e-9)
    with Store(tmp_path / "s.sqlite") as store:
        ms = measure_points(curve_device(), [(tiny, 64), (tiny, 96)], store, p)
    assert {m.stop_reason for m in ms} == {"time_cap"}


def test_interrupted_run_resumes_and_finished_points_are_reused(tmp_path, tiny, curve_device):
    path = tmp_path / "s.sqlite"
    points = [(tiny, r) for r in (64, 96, 128)]
    with Store(path) as store, pytest.raises(KeyboardInterrupt):
        measure_points(curve_device(noise=0.001, fail_after=4), points, store, FAST)
    with Store(path) as store:
        n_before = store.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        assert n_before == 4 * FAST.runs_per_visit  # every visit was committed
        dev = curve_device(noise=0.001)
        ms = measure_points(dev, points, store, FAST)
        # 4 visits were kept: the rest of 3 rounds x 3 points is 5 visits
        assert len(dev.calls) == 3 * 3 - 4
        assert all(m.n_rounds == 3 and m.stats.count == 12 for m in ms)
        again = curve_device()
        measure_points(again, points, store, FAST)
        assert again.calls == []  # finished measurements come from the store
        fresh = curve_device()
        measure_points(fresh, points, store, FAST, remeasure=True)
        assert len(fresh.calls) == 9
        # nothing is deleted by re-measuring
        assert store.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 4 * 9 + 4 * 9


def test_corrupt_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot use store"):
        Store(bad)


def test_store_keeps_context_and_network(tmp_path, tiny, curve_device):
    with Store(tmp_path / "s.sqlite") as store:
        (m,) = measure_points(curve_device(), [(tiny, 64)], store, FAST)
        again = store.measurement(store.latest(m.context.context_key, tiny.fingerprint, 64)[0])
        assert again.context == m.context and again.samples_ms == m.samples_ms
        assert store.network_spec(tiny.fingerprint)["stages"][1]["width"] == 16


def test_protocol_refuses_nonsense():
    with pytest.raises(ProtocolError):
        Protocol(min_rounds=5, max_rounds=2)


@pytest.mark.slow
def test_points_stopped_by_the_time_cap_are_measured_further_on_a_rerun(tmp_path, tiny,
                                                                          curve_device):
    """A cap is the run's limit, not the point's answer: a rerun without --remeasure goes on
    adding rounds to the same measurement; a point that reached its target is reused."""
    import time

    class Slow(curve_device):
        def sample(self, spec, resolution, runs, warmup_runs=1):
            time.sleep(0.5)
            return super().sample(spec, resolution, runs, warmup_runs)

    path = tmp_path / "s.sqlite"
    # the cap comes after the first visit (a round's judging, WAL checkpoint included, takes
    # well under 0.25 s) and before the second
    capped = Protocol(runs_per_visit=2, min_rounds=3, max_rounds=6, time_cap_s=0.25)
    points = [(tiny, 64), (tiny, 96)]
    with Store(path) as store:
        first = measure_points(Slow(noise=0.001), points, store, capped)
        assert {m.stop_reason for m in first} == {"time_cap"}
        reached = {m.resolution: m.n_rounds for m in first}
        assert 1 in reached.values() and set(reached.values()) <= {0, 1}
        dev = curve_device(noise=0.001)
        seen = []
        second = measure_points(dev, points, store, FAST, progress=seen.append)
        assert [m.stop_reason for m in second] == ["ci_target", "ci_target"]
        # the first run's samples are kept: the rest of min_rounds 3 is measured
        for m in second:
            had = reached[m.resolution]
            assert m.n_rounds == 3 and m.stats.count == 2 * had + 4 * (3 - had)
        assert seen[-1].resumed == 2 and seen[-1].reused == 0
        again = curve_device()
        third = []
        measure_points(again, points, store, FAST, progress=third.append)
        assert again.calls == [] and third[-1].reused == 2


def test_progress_reports_rounds_ci_and_time_left(tmp_path, tiny, curve_device):
    seen = []
    p = Protocol(runs_per_visit=4, min_rounds=4, max_rounds=8, ci_target_pct=0.5, time_cap_s=60)
    with Store(tmp_path / "s.sqlite") as store:
        measure_points(curve_device(noise=0.02), [(tiny, r) for r in (64, 96, 128)], store, p,
                       progress=seen.append)
    seen = [s for s in seen if not s.note]   # set-up notes come between
    assert [s.rounds for s in seen[:3]] == [0, 1, 2]   # once per round, from the start
    assert seen[0].eta_s is None and seen[0].ci_pct is None
    mid = seen[2]   # after 2 rounds: CIs known, an estimate of the time left
    assert mid.ci_pct is not None and mid.worst_ci_pct >= mid.ci_pct > 0
    assert mid.eta_s is not None and 0 <= mid.eta_s <= 60
    assert seen[-1].done == seen[-1].total == 3
