"""One latency scale across a live search (measure/scale.py): a reference measured with every
batch, reuse only when it meets the request and is tied to the scale, said out loud.

The device is `drift_device:SlowingDevice` (tests/drift_device.py), a real `Device` subclass
loaded as `module:Class` or through the `latency_lab.devices` entry-point group: an analytic
cost per run that becomes 1.8x after N samples, as a phone heating up or a machine whose load
doubles. The targets: the same winner as a steady device when it slows after a third of the
search, for `search`, `scale`, `compare` and `lut record`.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from drift_device import SlowingDevice, steady_ms
from latency_lab.cli.app import main
from latency_lab.measure.protocol import measure_points
from latency_lab.measure.scale import LatencyScale
from latency_lab.measure.settings import Protocol
from latency_lab.measure.store import Store
from latency_lab.network import presets
from latency_lab.search.evaluators import parse_evaluator
from latency_lab.search.rbis import run_rbis
from latency_lab.search.source_base import LatencySource
from latency_lab.search.sources import DeviceLatency

ROOT = Path(__file__).resolve().parents[1]
B0 = presets.get("efficientnet-b0")
P = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=3, ci_target_pct=50)
DEVICE = "drift_device:SlowingDevice"
STAGES = (4, 5, 6)     # 6 candidates per iteration: every store write is a real commit


def _points(*resolutions):
    return [(B0.with_resolution(r), r) for r in resolutions]


# -- the scale itself -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_slower_batch_is_divided_by_its_reference_factor(tmp_path):
    dev = SlowingDevice(slow_after=10 ** 9)
    with Store(tmp_path / "s.sqlite") as store:
        scale = LatencyScale(dev, store, P, base=B0)
        [first] = scale.measure(_points(224))
        assert first.factor == 1.0 and first.provenance == "live" and first.batch == 0
        dev.slow_after = 1                       # from now on 1.8x slower
        b1 = presets.get("efficientnet-b1")
        got = scale.measure([(b1, 224), (b1, 240)])
    assert scale.batches[-1].factor == pytest.approx(1.8, rel=0.01)
    for v, r in zip(got, (224, 240)):
        assert v.measurement.latency_ms == pytest.approx(1.8 * steady_ms(b1, r), rel=0.01)
        assert v.latency_ms == pytest.approx(steady_ms(b1, r), rel=0.01)
        # the ratio's uncertainty is carried: wider than the point's own CI
        assert v.rel > v.measurement.stats.ci_halfwidth_rel
        assert v.ci_low_ms < v.latency_ms < v.ci_high_ms
    assert "/ 1.80" in got[0].describe() or "/ 1.79" in got[0].describe()
    assert "batch 1" in got[0].describe()


@pytest.mark.slow
def test_reuse_only_what_meets_the_protocol_and_is_tied_said_out_loud(tmp_path):
    b1 = presets.get("efficientnet-b1")
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        LatencyScale(SlowingDevice(), store, P, base=B0).measure([(b1, 224), (b1, 240)])
        # measured alone, without a reference: its level is unknown
        measure_points(SlowingDevice(), [(b1, 256)], store, P)
        # measured with fewer rounds than the protocol asks
        measure_points(SlowingDevice(), [(B0, 272), (b1, 272)], store,
                       Protocol(runs_per_visit=4, min_rounds=1, max_rounds=1))
    said = []
    with Store(path) as store:
        n0 = store.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        scale = LatencyScale(SlowingDevice(seed=1), store, P, base=B0, say=said.append)
        got = scale.measure([(b1, 224), (b1, 240), (b1, 256), (b1, 272)])
        n1 = store.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    assert [v.provenance for v in got] == ["reused", "reused", "live", "live"]
    assert "measured" in got[0].note and "load" in got[0].note and "rounds" in got[0].note
    assert n1 - n0 == 3          # the reference, 256 (untied) and 272 (short): measured again
    text = "\n".join(said)
    assert "fell short of the protocol" in text and "efficientnet-b1@272" in text
    assert "no reference measured with it" in text and "efficientnet-b1@256" in text
    assert "reused from the store" in text
    with Store(path) as store:
        again = LatencyScale(SlowingDevice(), store, P, base=B0, remeasure=True)
        assert {v.provenance for v in again.measure([(b1, 224)])} == {"live"}


@pytest.mark.slow
def test_a_store_measured_at_another_level_is_said_and_rescaled(tmp_path):
    """Measured when the device ran 1.8x slower (a loaded machine), reused now that it is
    steady: the level is said, --remeasure offered, and the values land on today's scale."""
    b1 = presets.get("efficientnet-b1")
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        LatencyScale(SlowingDevice(slow_after=1), store, P, base=B0).measure([(b1, 224)])
    said = []
    with Store(path) as store:
        scale = LatencyScale(SlowingDevice(), store, P, base=B0, say=said.append)
        [v] = scale.measure([(b1, 224)])
    assert v.provenance == "reused" and v.factor == pytest.approx(1.8, rel=0.02)
    assert v.latency_ms == pytest.approx(steady_ms(b1, 224), rel=0.01)
    assert any("another level" in t and "--remeasure" in t for t in said)


def test_a_store_without_the_load_column_is_migrated_on_open(tmp_path):
    """The committed stores predate the load column: opened, they gain it (old samples: NULL,
    'load not recorded'), and new samples record the host's load."""
    old = tmp_path / "cuda.sqlite"
    shutil.copy(ROOT / "results" / "cuda" / "cuda.sqlite", old)
    cols = {r[1] for r in sqlite3.connect(old).execute("PRAGMA table_info(samples)")}
    assert "load" not in cols
    with Store(old) as store:
        mid = store.done_measurements()[0]
        assert "load not recorded" in store.measurement(mid).conditions()
        [m] = measure_points(SlowingDevice(), _points(224), store, P)
        assert m.load is not None and "load not recorded" not in m.conditions()
        assert store.measurement(m.measurement_id).load == m.load
    assert "load" in {r[1] for r in sqlite3.connect(old).execute("PRAGMA table_info(samples)")}


# -- the targets: the same winner when the device slows after a third ------------------------
class Unscaled(LatencySource):
    """Batches measured as before the scale: interleaved, nothing tying one to the next."""

    batched = True

    def __init__(self, device, store):
        self.device, self.store, self.values = device, store, {}

    def latency_many(self, points):
        todo = [(s, r) for s, r in points if (s.fingerprint, r) not in self.values]
        for (s, r), m in zip(todo, measure_points(self.device, todo, self.store, P)):
            self.values[(s.fingerprint, r)] = m.latency_ms
        return [self.values[(s.fingerprint, r)] for s, r in points]

    def describe(self):
        return "unscaled"


def _search(out: Path, slow_after: int, scaled: bool = True):
    budget = 1.5 * steady_ms(B0, 224)
    out.mkdir()
    if scaled:
        src = DeviceLatency(DEVICE, out / "s.sqlite", P, {"slow_after": slow_after},
                            reference=B0)
    else:
        src = Unscaled(SlowingDevice(slow_after=slow_after), Store(out / "s.sqlite"))
    r = run_rbis(B0, budget, [224, 240], src, parse_evaluator("synthetic"), stages=STAGES, k=4,
                 out_dir=out)
    return r, src.device.taken


@pytest.mark.slow
def test_rbis_winner_unchanged_when_the_device_slows_after_a_third(tmp_path):
    steady, n = _search(tmp_path / "steady", 0)
    slow, _ = _search(tmp_path / "slow", n // 3)
    assert slow.winner.resolution == steady.winner.resolution
    assert slow.winner.best.spec.fingerprint == steady.winner.best.spec.fingerprint
    assert slow.winner.best.latency_ms == pytest.approx(steady.winner.best.latency_ms, rel=0.01)
    rows = list(csv.DictReader(open(tmp_path / "slow" / "trace.csv")))
    factors = {float(r["scale_factor"]) for r in rows if r["scale_factor"]}
    assert min(factors) == pytest.approx(1.0, abs=0.01)
    assert max(factors) == pytest.approx(1.8, rel=0.01)
    assert {r["latency_provenance"] for r in rows} == {"live"}
    state = json.loads((tmp_path / "slow" / "state.json").read_text())
    assert len({b["batch"] for b in state["latency_scale"]["batches"]}) > 5
    # without the scale the same slowdown changes the search: the test can fail
    unscaled, _ = _search(tmp_path / "unscaled", n // 3, scaled=False)
    assert [p.iterations for p in unscaled.per_resolution] != [
        p.iterations for p in steady.per_resolution]


@pytest.mark.slow
def test_a_resumed_search_goes_on_on_the_scale_it_began(tmp_path):
    steady, n = _search(tmp_path / "steady", 0)
    out = tmp_path / "resumed"
    out.mkdir()
    src = DeviceLatency(DEVICE, out / "s.sqlite", P, {"slow_after": n // 3}, reference=B0)
    _fail_after(src, 6)
    with pytest.raises(KeyboardInterrupt):
        run_rbis(B0, 1.5 * steady_ms(B0, 224), [224, 240], src,
                 parse_evaluator("synthetic"), stages=STAGES, k=4, out_dir=out)
    assert json.loads((out / "state.json").read_text())["latency_scale"]["batches"]
    # a new process: a new device (slow from its start), the scale taken from state.json
    src = DeviceLatency(DEVICE, out / "s.sqlite", P, {"slow_after": 1}, reference=B0)
    again = run_rbis(B0, 1.5 * steady_ms(B0, 224), [224, 240], src,
                     parse_evaluator("synthetic"), stages=STAGES, k=4, out_dir=out)
    assert again.winner.best.spec.fingerprint == steady.winner.best.spec.fingerprint


def _fail_after(src, n: int) -> None:
    """The source stops (as a process stopped by Ctrl-C) at its n+1-th batch."""
    real, left = src.latency_many, [n]

    def latency_many(points):
        left[0] -= 1
        if left[0] < 0:
            raise KeyboardInterrupt
        return real(points)

    src.latency_many = latency_many


@pytest.mark.slow
def test_scale_family_unchanged_when_the_device_slows(tmp_path):
    from latency_lab.search.scaling import FAMILIES, scale_to_budget

    budget = 2.0 * steady_ms(B0, 224)
    steady = DeviceLatency(DEVICE, tmp_path / "a.sqlite", P, reference=B0)
    want = {m: scale_to_budget(f, B0, budget, steady.latency_ms) for m, f in FAMILIES.items()}
    n = steady.device.taken
    slow = DeviceLatency(DEVICE, tmp_path / "b.sqlite", P, {"slow_after": n // 3},
                         reference=B0)
    got = {m: scale_to_budget(f, B0, budget, slow.latency_ms) for m, f in FAMILIES.items()}
    assert {m: r.spec.fingerprint for m, r in got.items()} == {
        m: r.spec.fingerprint for m, r in want.items()}
    assert max(b.factor for b in slow.scale.batches) == pytest.approx(1.8, rel=0.01)


@pytest.fixture
def slowing_plugin(tmp_path, monkeypatch):
    """SlowingDevice registered as `slowing` through the latency_lab.devices entry-point
    group, by a distribution on sys.path laid out as pip installs one."""
    site = tmp_path / "site"
    info = site / "ll_slowing-0.1.dist-info"
    info.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("drift_device.py"), site / "ll_slowing.py")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ll-slowing\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[latency_lab.devices]\nslowing = ll_slowing:SlowingDevice\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    importlib.invalidate_caches()
    return "slowing"


@pytest.mark.slow
def test_compare_unchanged_when_the_installed_device_slows(slowing_plugin, tmp_path, capsys):
    budget = f"{1.5 * steady_ms(B0, 224):.4f}"

    def compare(out, *options):
        assert main(["compare", "--budget-ms", budget, "--latency", slowing_plugin,
                     "--accuracy", "synthetic", "--resolutions", "224,240", "--candidates",
                     "4", "--stages", "4,5,6", "--min-rounds", "3", "--max-rounds", "3",
                     "--ci-target-pct", "50",
                     "--out", str(tmp_path / out), "--store", str(tmp_path / f"{out}.sqlite"),
                     *options]) == 0
        rows = list(csv.DictReader(open(tmp_path / out / "compare.csv")))
        assert {r["latency_provenance"] for r in rows} == {"live"}
        return {r["method"]: r["fingerprint"] for r in rows}

    assert main(["devices"]) == 0 and "slowing" in capsys.readouterr().out
    steady = compare("steady")
    with sqlite3.connect(tmp_path / "steady.sqlite") as db:
        n = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    slow = compare("slow", "-O", f"slow_after={n // 3}")   # a third of the steady run
    assert slow == steady
    text = capsys.readouterr()
    assert "live batches on one scale" in text.out
    trace = list(csv.DictReader(open(tmp_path / "slow" / "trace.csv")))
    assert max(float(r["scale_factor"]) for r in trace) == pytest.approx(1.8, rel=0.01)
    summary = (tmp_path / "slow" / "summary.md").read_text()
    assert "Latency provenance and scale" in summary and "live" in summary


@pytest.mark.slow
def test_lut_record_resumed_on_a_slower_device_keeps_the_first_sessions_scale(tmp_path):
    from latency_lab.network.scaling import scaled_variant
    from latency_lab.tables.lut_record import record_lut

    small = presets.get("mbconv-tiny")
    proto = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=3, ci_target_pct=50)
    with Store(tmp_path / "steady.sqlite") as store:
        steady = record_lut(SlowingDevice(), small, [64, 80], 1, 1, store, proto)
    said = []
    with Store(tmp_path / "two.sqlite") as store:
        record_lut(SlowingDevice(), small, [64], 1, 1, store, proto)
        # the second session: the rest of the space, on a device 1.8x slower from its start
        two = record_lut(SlowingDevice(slow_after=1), small, [64, 80], 1, 1, store, proto,
                         say=said.append)
    assert two.latency_scale["batches"][0]["factor"] == pytest.approx(1.8, rel=0.01)
    for k, row in steady.blocks.items():
        assert two.blocks[k].latency_ms == pytest.approx(row.latency_ms, rel=0.01)
    net = scaled_variant(small, [1] * len(small.stages), [0] * len(small.stages))
    assert two.predict_ms(net, 80) == pytest.approx(steady.predict_ms(net, 80), rel=0.01)
    assert any("reused from the store" in t for t in said)


@pytest.mark.slow
def test_lut_record_unchanged_when_the_device_slows_after_a_third(tmp_path):
    """One session, the device 1.8x slower from a third of its samples on. The session is one
    interleaved batch, so its scale is the reference's level over that batch, whichever it is;
    what must hold is that every block and calibration network is on that one scale: the LUT is
    the steady one times one constant, and predicts every network in the same proportion."""
    from latency_lab.network.scaling import scaled_variant
    from latency_lab.tables.lut_record import record_lut

    small = presets.get("mbconv-tiny")
    proto = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=3, ci_target_pct=50)
    dev = SlowingDevice()
    with Store(tmp_path / "steady.sqlite") as store:
        steady = record_lut(dev, small, [64, 80], 1, 1, store, proto)
    slow_dev = SlowingDevice(slow_after=dev.taken // 3)
    with Store(tmp_path / "slow.sqlite") as store:
        slow = record_lut(slow_dev, small, [64, 80], 1, 1, store, proto)
    assert slow_dev.speed() == 1.8                      # it did slow down during the session
    assert slow.blocks.keys() == steady.blocks.keys()
    ratios = [slow.blocks[k].latency_ms / row.latency_ms for k, row in steady.blocks.items()]
    c = sorted(ratios)[len(ratios) // 2]
    assert 1.0 <= c <= 1.8 + 1e-9
    assert all(r == pytest.approx(c, rel=0.01) for r in ratios), (min(ratios), max(ratios))
    for a, b in zip(steady.calibration, slow.calibration):
        assert b.measured_ms == pytest.approx(c * a.measured_ms, rel=0.01)
    n = len(small.stages)
    nets = [scaled_variant(small, [w] * n, [d] * n) for w in (0, 1) for d in (0, 1)]
    for net in nets:
        for r in (64, 80):
            assert slow.predict_ms(net, r) == pytest.approx(c * steady.predict_ms(net, r),
                                                            rel=0.02)


@pytest.mark.slow
def test_scale_command_writes_each_probes_provenance_and_the_factors(tmp_path, capsys):
    out = tmp_path / "s.json"
    budget = f"{2.0 * steady_ms(B0, 224):.4f}"
    assert main(["scale", "--method", "rs", "--budget-ms", budget, "--latency", DEVICE,
                 "-O", "slow_after=200", "--min-rounds", "3", "--max-rounds", "3",
                 "--ci-target-pct", "50", "--store", str(tmp_path / "s.sqlite"),
                 "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert {p["provenance"] for p in d["probes"]} == {"live"}
    assert all(p["ci_low_ms"] < p["latency_ms"] < p["ci_high_ms"] for p in d["probes"])
    factors = [b["factor"] for b in d["latency_scale"]["batches"]]
    assert factors[0] == 1.0 and max(factors) == pytest.approx(1.8, rel=0.01)
    # every probe is one batch with its reference: B0 at the probe's resolution where that has
    # a value on the scale (rs's first members are B0's architecture at 228 px), else B0@224
    refs = {b["reference"] for b in d["latency_scale"]["batches"]}
    assert "efficientnet-b0@224" in refs and all(r.startswith("efficientnet-b0@") for r in refs)
    steady = DeviceLatency(DEVICE, tmp_path / "t.sqlite", P, reference=B0)
    from latency_lab.search.scaling import FAMILIES, scale_to_budget

    want = scale_to_budget(FAMILIES["rs"], B0, float(budget), steady.latency_ms)
    assert d["fingerprint"] == want.spec.fingerprint
