"""Per-block LUT: block enumeration worked out by hand, the predictor's fit, the LUT file's
validation, and one real recording on the cpu device."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import pytest

from latency_lab.network.blocks import network_blocks
from latency_lab.network.scaling import (blocks_by_kind, random_scaled, scaled_space_blocks,
                                         scaled_variant, width_options)
from latency_lab.cli.app import main
from latency_lab.tables.lut import BlockRow, CalibrationPoint, Lut, LutError, fit_overhead
from latency_lab.tables.lut_file import load_lut, save_lut
from latency_lab.measure.api import DeviceInfo
from latency_lab.network.presets import get
from latency_lab.network.scaling import add_block, widen
from latency_lab.network.spec import NetworkSpec

# Widths chosen so that one RBIS width step changes them: round4(24 * 1.1) = 28,
# round4(40 * 1.1) = 44; a second step gives round4(24 * 1.2) = 28 again but round4(40 * 1.2) = 48.
SMALL = {
    "name": "small", "num_classes": 10, "activation": "swish",
    "stem": {"width": 16, "kernel": 3, "stride": 2}, "head": {"width": 64},
    "stages": [
        {"width": 24, "depth": 1, "kernel": 3, "expansion": 1, "stride": 1, "se_ratio": 0.25},
        {"width": 40, "depth": 2, "kernel": 3, "expansion": 6, "stride": 2, "se_ratio": 0.25},
    ],
}
CTX = DeviceInfo(name="cpu", hardware="test", runtime="litert", runtime_version="2.3.0", threads=1)


@pytest.fixture
def small() -> NetworkSpec:
    return NetworkSpec.from_dict(SMALL)


def test_width_options_follow_rbis_rounding():
    assert width_options(24, 2) == [24, 28]        # 26.4 -> 28, 28.8 -> 28
    assert width_options(40, 2) == [40, 44, 48]
    assert width_options(16, 1) == [16]            # 17.6 rounds back to 16
    assert width_options(80, 3) == [80, 88, 96, 104]


@pytest.mark.parametrize("w, d, resolutions, expected", [
    # stem 1 + stage 0 first block (16 -> 24) + stage 1 first (24 -> 40) and second (40 -> 40)
    # + head (40 -> 64)
    (0, 0, [64], {"stem": 1, "mbconv": 3, "head": 1}),
    # stage 0: 16 -> {24, 28} = 2, its depth copy {24, 28} -> itself = 2; stage 1: first
    # {24, 28} x {40, 44} = 4, later {40, 44} = 2 (the depth copy is the same block); head 2
    (1, 1, [64], {"stem": 1, "mbconv": 10, "head": 2}),
    # same, at two input sizes
    (1, 1, [64, 96], {"stem": 2, "mbconv": 20, "head": 4}),
    # stage 0: 2 (no copy without depth steps); stage 1: {24, 28} x {40, 44, 48} = 6 + 3; head 3
    (2, 0, [64], {"stem": 1, "mbconv": 11, "head": 3}),
])
def test_block_enumeration_counts_by_hand(small, w, d, resolutions, expected):
    points = scaled_space_blocks(small, resolutions, w, d)
    assert blocks_by_kind(points) == expected
    assert len({(b.fingerprint, s) for b, s in points}) == len(points)


@pytest.mark.parametrize("w, d, resolutions", [(0, 0, [64]), (1, 1, [64, 96]), (2, 0, [64]),
                                                (3, 2, [64, 80, 96]), ([0, 5], 1, [64])])
def test_the_space_is_counted_before_any_block_is_made(small, w, d, resolutions):
    """`space_size` bounds what `scaled_space_blocks` lists, without making a block."""
    from latency_lab.network.scaling import space_size

    n = space_size(small, resolutions, w, d)
    assert len(scaled_space_blocks(small, resolutions, w, d)) <= n <= 2 * n


def test_a_space_too_large_is_refused_with_its_size_and_time(small, capsys, tmp_path):
    """--max-width-steps 100000 listed blocks silently for minutes; now one line, at once."""
    import time

    from latency_lab.tables.lut_record import MAX_POINTS, check_space

    assert "up to 20 block points, about 7 s" in check_space(small, [64], 2, 1)
    t = time.monotonic()
    with pytest.raises(LutError, match=r"has up to 20,001,400,014 block points, about 222 years to "
                                       r"measure .* at most 50,000"):
        check_space(small, [64, 96], 100_000, 1)
    assert time.monotonic() - t < 1.0
    assert MAX_POINTS == 50_000
    (tmp_path / "small.json").write_text(small.to_json())
    rc = main(["lut", "record", "--device", "conftest:CurveDevice", "--network",
               str(tmp_path / "small.json"), "--max-width-steps", "100000", "--store",
               str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "block points" in err[0]
    assert not (tmp_path / "s.sqlite").exists()


def test_enumerated_blocks_have_the_right_channels_and_sizes(small):
    points = scaled_space_blocks(small, [64], 1, 1)
    firsts = {(b.c_in, b.c_out, s) for b, s in points if b.kind == "mbconv" and b.stride == 2}
    assert firsts == {(24, 40, 32), (24, 44, 32), (28, 40, 32), (28, 44, 32)}
    heads = {(b.c_in, s) for b, s in points if b.kind == "head"}
    assert heads == {(40, 16), (44, 16)}
    se = {b.c_in: b.se_channels for b, _ in points if b.kind == "mbconv"}
    assert se == {16: 4, 24: 6, 28: 7, 40: 10, 44: 11}   # int(c_in * 0.25), from the input


def test_every_scaled_network_is_covered(small):
    b0 = get("efficientnet-b0")
    rng = random.Random(3)
    for base, w, d, res in ((small, 1, 1, [64, 96]), (b0, 2, 1, [240, 256])):
        covered = {(b.fingerprint, s) for b, s in scaled_space_blocks(base, res, w, d)}
        for _ in range(20):
            net, r = random_scaled(base, w, d, rng), rng.choice(res)
            assert {(x.block.fingerprint, x.size) for x in network_blocks(net, r)} <= covered
        too_wide = scaled_variant(base, [w + 3] * len(base.stages), [0] * len(base.stages))
        assert not {(x.block.fingerprint, x.size) for x in network_blocks(too_wide, res[0])} <= covered


def test_scaled_variant_is_rbis_steps(small):
    v = scaled_variant(small, [0, 2], [1, 0])
    assert v.stages[1] == widen(widen(small.stages[1], 40, 0), 40, 1)
    assert v.stages[0] == add_block(small.stages[0]) and v.widths == (24, 48)


def _point(name, measured, total):
    return CalibrationPoint(name, "f" * 16, 224, measured, measured, measured, 10, total)


def test_overhead_fit_chooses_by_leave_one_out():
    exact = [_point(str(i), s, s) for i, s in enumerate((10.0, 20.0, 30.0, 45.0))]
    assert fit_overhead(exact).model == "sum" and fit_overhead(exact).expected_error_pct == 0
    affine = [_point(str(i), 0.9 * s + 2.0, s) for i, s in enumerate((10.0, 20.0, 30.0, 45.0))]
    o = fit_overhead(affine)
    assert o.model == "affine" and o.scale == pytest.approx(0.9) and o.offset_ms == pytest.approx(2)
    assert o.loo_rms_pct["sum"] > 1 and o.expected_error_pct == pytest.approx(0, abs=1e-9)
    assert fit_overhead([]).expected_error_pct is None
    noisy = affine + [CalibrationPoint("loaded", "f" * 16, 224, 60.0, 40.0, 80.0, 10, 30.0)]
    o = fit_overhead(noisy, max_ci_pct=5)
    assert (o.model, o.n_points, o.n_excluded) == ("affine", 4, 1)
    assert o.scale == pytest.approx(0.9)
    assert fit_overhead(noisy).scale != pytest.approx(0.9)


def _lut(small, latency=lambda b, s: 1e-4 * b.c_out * s) -> Lut:
    rows = {(b.fingerprint, s): BlockRow(b, s, latency(b, s), 0.9 * latency(b, s),
                                         1.1 * latency(b, s), 40)
            for b, s in scaled_space_blocks(small, [64, 96], 1, 1)}
    return Lut(CTX, small, [64, 96], 1, 1, rows)


def test_prediction_sums_the_network_blocks_and_names_a_missing_one(small, tmp_path):
    lut = _lut(small)
    net = scaled_variant(small, [1, 1], [0, 1])
    expected = sum(1e-4 * x.block.c_out * x.size for x in network_blocks(net, 96))
    assert lut.predict_ms(net, 96) == pytest.approx(expected)
    with pytest.raises(LutError, match=r"no block stem k3s2 3->16 swish at input 80x80 .* "
                                       r"covers resolutions 64, 96"):
        lut.predict(net, 80)
    with pytest.raises(LutError, match=r"no block mbconv k3e6s2 24->48 se6 swish at input 32x32"
                                       r".*s1.b0 of small-w02-d00"):
        lut.predict(scaled_variant(small, [0, 2], [0, 0]), 64)


def test_p5_statistic_sums_block_p5(small, tmp_path):
    lut = _lut(small)
    lut.blocks = {k: replace(r, p5_ms=0.5 * r.latency_ms) for k, r in lut.blocks.items()}
    net = scaled_variant(small, [1, 0], [0, 1])
    median = lut.predict_ms(net, 64)
    lut.statistic = "p5"
    p = load_lut(save_lut(lut, tmp_path / "lut.json")).predict(net, 64)
    assert p.statistic == "p5" and p.latency_ms == pytest.approx(0.5 * median)
    no_p5 = _lut(small)
    no_p5.statistic = "p5"
    with pytest.raises(LutError, match="LUT has no p5 for block stem"):
        no_p5.predict(net, 64)


def test_lut_file_round_trip_and_context(small, tmp_path):
    lut = _lut(small)
    lut.overhead = fit_overhead([_point("a", 10.5, 10.0), _point("b", 21.0, 20.0)])
    path = save_lut(lut, tmp_path / "lut.json")
    back = load_lut(path, context=CTX)
    net = scaled_variant(small, [1, 0], [1, 1])
    assert back.predict(net, 64) == lut.predict(net, 64)
    other = DeviceInfo(name="cpu", hardware="test", runtime="litert", runtime_version="2.3.0",
                       threads=2)
    with pytest.raises(LutError, match=rf"recorded in device context {CTX.context_key} .*not "
                                       rf"{other.context_key}"):
        load_lut(path, context=other)


def _rewrite(path, change):
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


@pytest.mark.parametrize("change, message", [
    (lambda p: p.write_text(p.read_text()[:-200]), r"not valid JSON .*truncated"),
    (lambda p: p.write_text("[1, 2]"), r"not a latency-lab LUT"),
    (lambda p: _rewrite(p, lambda d: d.pop("blocks")), r"lacks key\(s\) blocks"),
    (lambda p: _rewrite(p, lambda d: d["blocks"][3].update(latency_ms="fast")),
     r"block row 3 latency_ms is 'fast', not a finite number"),
    (lambda p: _rewrite(p, lambda d: d["blocks"][2]["block"].update(c_out=100)),
     r"block row 2: description hashes to \w+, the row says \w+ \(hand-edited\?\)"),
    (lambda p: _rewrite(p, lambda d: d["blocks"].append(d["blocks"][0])),
     r"block row \d+ repeats stem"),
    (lambda p: _rewrite(p, lambda d: d["context"].update(threads=8)),
     r"context_key \S+ does not match its context fields"),
    (lambda p: _rewrite(p, lambda d: d["network"]["spec"]["stages"][0].update(width=32)),
     r"base network JSON has fingerprint"),
    (lambda p: _rewrite(p, lambda d: d["overhead"].update(model="magic")),
     r"unknown overhead model 'magic'"),
    (lambda p: _rewrite(p, lambda d: d.update(format_version=9)), r"format version 9"),
    (lambda p: _rewrite(p, lambda d: d.update(statistic="mean")), r"unknown statistic 'mean'"),
    # typed fields: truncating 16.7 to 16 would give the row block 16's fingerprint
    (lambda p: _rewrite(p, lambda d: d["blocks"][2]["block"].update(
        c_out=d["blocks"][2]["block"]["c_out"] + 0.7)), r"block c_out must be an integer, got"),
    (lambda p: _rewrite(p, lambda d: d["blocks"][1].update(input_size=True)),
     r"block row 1 input_size must be an integer, got True"),
    (lambda p: _rewrite(p, lambda d: d.update(resolutions=[96.5])),
     r"resolution must be an integer, got 96.5"),
    (lambda p: p.write_text(p.read_text().replace('"latency_ms": ', '"latency_ms": NaN, "x": ',
                                                  1)), r"NaN is not a JSON number"),
])
def test_bad_lut_files_are_refused(small, tmp_path, change, message):
    path = save_lut(_lut(small), tmp_path / "lut.json")
    change(path)
    with pytest.raises(LutError, match=message):
        load_lut(path)


def test_cli_predict_and_errors(small, tmp_path, capsys):
    path = save_lut(_lut(small), tmp_path / "lut.json")
    net = tmp_path / "net.json"
    net.write_text(scaled_variant(small, [1, 1], [1, 1]).to_json())
    assert main(["lut", "predict", "--lut", str(path), "--network", str(net),
                 "--resolution", "96", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["n_blocks"] == 1 + 2 + 3 + 1 and p["context_key"] == CTX.context_key
    assert p["expected_error_pct"] is None
    assert main(["lut", "predict", "--lut", str(path), "--network", "efficientnet-b0",
                 "--resolution", "64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: LUT") and "no block stem k3s2 3->32" in err
    assert main(["lut", "predict", "--lut", str(tmp_path / "none.json"), "--network", str(net),
                 "--resolution", "64"]) == 2
    assert "cannot read LUT" in capsys.readouterr().err


@pytest.mark.slow
def test_record_and_predict_on_the_real_cpu_device(small, tmp_path, model_dir, capsys):
    from latency_lab.devices.cpu import CpuDevice
    from latency_lab.tables.lut_record import record_lut
    from latency_lab.measure.api import get_device
    from latency_lab.measure.protocol import Protocol, measure_points
    from latency_lab.measure.store import Store

    protocol = Protocol(runs_per_visit=10, min_rounds=3, max_rounds=6, ci_target_pct=5,
                        time_cap_s=120)
    with Store(tmp_path / "s.sqlite") as store, CpuDevice(model_dir=model_dir) as dev:
        lut = record_lut(dev, small, [64, 96], 1, 1, store, protocol, n_calibration=1)
        assert len(lut.blocks) == 26 and all(r.n_samples >= 30 for r in lut.blocks.values())
        o = lut.overhead
        assert len(lut.calibration) == 3 and o.n_points + o.n_excluded == 3
        n_measured = store.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        said = []
        again = record_lut(dev, small, [64, 96], 1, 1, store, protocol, n_calibration=1,
                           say=said.append)
        # resumed from the store: the two references (a block, the base network) are
        # measured again, to put this session on the first one's scale, and so is whatever
        # the session says fell short of the protocol (the 120 s cap on a loaded host) or had
        # no reference measured with it (it went on after its reference stopped); the rest
        # is reused (the figures reloaded from the store may differ in the last digits from
        # the in-process ones: drift factors are refitted)
        redone = sum(int(n) for t in said for n in re.findall(r"batch \d+: (\d+) stored", t))
        assert store.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == \
            n_measured + 2 + redone
        assert any("reused from the store" in t for t in said)
        assert again.blocks.keys() == lut.blocks.keys()
        same = [again.blocks[k].latency_ms == pytest.approx(lut.blocks[k].latency_ms, rel=0.01)
                for k in again.blocks]
        assert sum(same) >= len(same) - redone
        # a network the LUT never saw whole, measured for real
        fresh = scaled_variant(small, [1, 1], [1, 0])
        [m] = measure_points(dev, [(fresh, 96)], store, protocol)
    path = save_lut(lut, tmp_path / "lut.json")
    predicted = load_lut(path).predict_ms(fresh, 96)
    # a sanity bound only; the accuracy figures come from benchmarks/lut_benchmark.py
    assert abs(predicted - m.latency_ms) / m.latency_ms < 0.3
    replay = get_device(f"lut:{path}")
    assert replay.info().context_key != dev.info().context_key
    assert replay.sample(fresh, 96, 5).samples_ms == (pytest.approx(predicted),)
    # a prediction is not a measurement: no samples of its own, the blocks' CI around it
    [p] = measure_points(replay, [(fresh, 96)], None)
    assert p.stop_reason == "predicted" and p.stats.count == 0 and p.samples_ms == ()
    assert p.latency_ms == pytest.approx(predicted)
    assert p.stats.ci_low_ms < p.latency_ms < p.stats.ci_high_ms


def test_the_committed_b0_to_b2_lut_is_calibrated_on_the_recorded_table():
    """The LUT recorded under load is calibrated on the quieter table's whole networks; it
    predicts them within its stated error, and `lut calibrate` reproduces the fit."""
    from pathlib import Path

    from latency_lab.tables.lut import calibrate_from_table
    from latency_lab.tables.latency_table import load_table

    root = Path(__file__).resolve().parents[1] / "results" / "cpu"
    lut = load_lut(root / "lut-efficientnet-b0-to-b2.json")
    table = load_table(root / "latency-table-b0-search.csv")
    assert lut.calibrated_on.startswith("medians of 325 whole networks")
    assert lut.overhead.expected_error_pct < 4.0 and lut.statistic == "p5"
    again = calibrate_from_table(lut, table)
    assert again.overhead.scale == pytest.approx(lut.overhead.scale)
    assert again.overhead.offset_ms == pytest.approx(lut.overhead.offset_ms)
    from latency_lab.network.presets import get

    b0 = get("efficientnet-b0")
    for r in (224, 256, 288):
        assert lut.predict_ms(b0, r) == pytest.approx(table.latency_ms(b0, r), rel=0.08)
