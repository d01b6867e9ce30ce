"""A device name as latency source: measured through the protocol, then served from the store."""

from __future__ import annotations

import pytest

from latency_lab.measure.protocol import Protocol
from latency_lab.network.spec import NetworkSpec
from latency_lab.search.sources import DeviceLatency, parse_latency_source

TINY = {"name": "tiny", "resolution": 64, "stem": {"width": 8}, "head": {"width": 32},
        "stages": [{"width": 24, "depth": 1, "kernel": 3, "expansion": 1, "stride": 1},
                   {"width": 40, "depth": 1, "kernel": 3, "expansion": 2, "stride": 2}]}


@pytest.mark.slow
def test_device_source_measures_once_then_reads_the_store(tmp_path, monkeypatch):
    """A second source on the same store measures only its batch's reference again (the scale
    is now); the other point is reused, said to be, and put on the new scale by the reference
    measured with it then."""
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    spec = NetworkSpec.from_dict(TINY)
    # every point the same 3 rounds: a point that ran a round longer than the reference is
    # tied to it only when their sampling times overlap enough (scale.MIN_OVERLAP)
    protocol = Protocol(runs_per_visit=3, min_rounds=3, max_rounds=3, ci_target_pct=50.0)
    store = tmp_path / "m.sqlite"
    with parse_latency_source("cpu", store_path=store, protocol=protocol) as src:
        assert isinstance(src, DeviceLatency)
        a, b = src.latency_many([(spec, 64), (spec, 72)])
        m = src.measurement(spec, 64)
        assert a > 0 and b > 0 and m.stats.count >= 6 and a == m.latency_ms
        assert "cpu" in src.describe()
        assert src.provenance(spec, 72)["provenance"] == "live"
    calls, said = [], []
    with parse_latency_source("cpu", store_path=store, protocol=protocol,
                              say=said.append) as again:
        real = again.device.sample
        monkeypatch.setattr(again.device, "sample",
                            lambda s, r, *x, **k: calls.append(r) or real(s, r, *x, **k))
        a2, b2 = again.latency_many([(spec, 64), (spec, 72)])
        ref_now = again.measurement(spec, 64).latency_ms
    assert set(calls) == {64}                       # only the reference was measured
    assert again.provenance(spec, 72)["provenance"] == "reused"
    assert b2 == pytest.approx(b * ref_now / a)     # on the new scale, by its tie
    assert any("reused from the store" in t and "load" in t for t in said)


@pytest.mark.slow
def test_search_on_the_cpu_device_measures_each_iteration_as_one_batch(tmp_path, monkeypatch):
    from latency_lab.search.evaluators import EvalResult, Evaluator
    from latency_lab.search.rbis import run_rbis

    class Capacity(Evaluator):   # accuracy: a known function of size (no training here)
        def evaluate(self, request):
            s = request.spec
            return EvalResult(60 + sum(s.widths) / 10 + sum(s.depths))

        def describe(self):
            return "capacity"

    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    spec = NetworkSpec.from_dict(TINY)
    protocol = Protocol(runs_per_visit=3, min_rounds=2, max_rounds=2, ci_target_pct=50.0)
    with parse_latency_source("cpu", store_path=tmp_path / "m.sqlite", protocol=protocol) as src:
        batches = []
        real = src.latency_many
        monkeypatch.setattr(src, "latency_many", lambda pts: batches.append(len(pts)) or real(pts))
        base = src.latency_ms(spec, 64)
        res = run_rbis(spec, 3 * base, [64], src, Capacity(), stages=[0, 1], k=3, max_iterations=1)
    assert batches[:3] == [1, 1, 3]  # probe, baseline (store hit), the 3 pairs of iteration 0 together
    assert res.winner.best.latency_ms <= 3 * base
