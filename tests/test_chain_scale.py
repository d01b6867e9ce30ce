"""A table and a LUT on one scale (search/calibration.py, search/chain.py), committed traces
monotone in network size (benchmarks/check_monotone.py), and what a chain lacking a point
says. On the committed cpu files of the README's examples."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark_helpers import load_benchmark
from latency_lab.cli.app import main
from latency_lab.network import presets
from latency_lab.network.scaling import contains, set_depth
from latency_lab.search.calibration import Monotone
from latency_lab.search.sources import parse_latency_sources

ROOT = Path(__file__).resolve().parents[1]
_check = load_benchmark("check_monotone")
check_main, violations = _check.main, _check.violations
TABLE = ROOT / "results/cpu/latency-table-b0-search.csv"
LUT = ROOT / "results/cpu/lut-efficientnet-b0-to-b2.json"
B0 = presets.get("efficientnet-b0")


def _net(widths, depths):
    spec = B0
    for i, (w, d) in enumerate(zip(widths, depths)):
        spec = spec.with_stage(i, set_depth(replace(spec.stages[i], width=w), d))
    return spec


@pytest.fixture(scope="module")
def chain():
    said = []
    src = parse_latency_sources([f"table:{TABLE}", f"lut:{LUT}"], reference=B0, say=said.append)
    yield src, said
    src.close()


@pytest.mark.slow
def test_the_lut_is_calibrated_to_the_table_per_resolution_and_says_so(chain):
    src, said = chain
    [cal] = src.calibrations.values()
    assert set(cal.per_resolution) == {240, 256, 272, 288}     # 224: B0 alone, too few
    for f in cal.per_resolution.values():
        assert 0.9 < f.factor < 1.1 and 0 < f.rms_pct < 5 and f.n >= 3
    assert any("calibrated to table" in t and "240 px x" in t for t in said)
    # a network the table lacks, answered by the LUT on the table's scale
    net = _net((16, 24, 40, 104, 112, 192, 320), (1, 2, 2, 3, 3, 5, 1))
    lut = src.sources[1].device.lut
    value = src.latency_ms(net, 256)
    assert value == pytest.approx(lut.predict_ms(net, 256) * cal.per_resolution[256].factor)
    p = src.provenance(net, 256)
    assert p["provenance"] == "lut-calibrated" and p["ci_low_ms"] < value < p["ci_high_ms"]
    assert "256 px" in p["note"]
    src.latency_ms(B0, 240)
    assert src.provenance(B0, 240)["provenance"] == "table"


@pytest.mark.slow
def test_a_predicted_network_is_never_faster_than_one_it_contains(chain):
    """The committed compare's one predicted violation: 6+6 widened at 224 px, 12.039 ms from
    the LUT below B0's 12.078 ms in the table. In the chain it is raised above B0 by the LUT's
    own increment between the two."""
    src, _ = chain
    bigger = _net((16, 24, 40, 80, 112, 192, 384), (1, 2, 2, 3, 3, 4, 1))
    assert contains(bigger, B0)
    base = src.latency_ms(B0, 224)
    value = src.latency_ms(bigger, 224)
    assert base == pytest.approx(12.0781775) and value > base
    assert "raised" in src.provenance(bigger, 224)["note"]


def test_monotone_bounds_a_value_between_its_neighbours():
    small, big = B0, _net((16, 24, 40, 80, 112, 192, 384), (1, 2, 2, 3, 3, 5, 1))
    mid = _net((16, 24, 40, 80, 112, 192, 384), (1, 2, 2, 3, 3, 4, 1))
    m = Monotone()
    m.add(small, 224, 10.0)
    m.add(big, 224, 12.0)
    assert m.bound(mid, 224, 11.0, lambda a, b: 0.5) == (11.0, "")
    low, note = m.bound(mid, 224, 9.0, lambda a, b: 0.5)
    assert low == 10.5 and "raised" in note
    high, note = m.bound(mid, 224, 13.0, lambda a, b: 0.5)
    assert high == 11.5 and "lowered" in note
    assert m.bound(mid, 240, 9.0, lambda a, b: 0.5)[0] == 9.0       # another resolution


def _brute_force(known, spec, below):
    """The rule as first written: every read network tested with `contains`."""
    pool = [k for k in known if (contains(spec, k.spec) if below else contains(k.spec, spec))]
    pick = max if below else min
    return pick(pool, key=lambda k: k.latency_ms, default=None)


def test_monotone_finds_the_neighbours_that_every_contains_test_finds():
    """The array filter (sizes of one family) then `contains` on the nearest gives what testing
    every read network gives, ties (first read) and re-reads included, on random RBIS-like
    networks (some with a changed block, which the sizes alone cannot see)."""
    import random

    rng = random.Random(3)
    m = Monotone()
    found = 0
    nets = []
    for _ in range(60):
        widths = [rng.choice([16, 24, 32]), 24, rng.choice([40, 48]), rng.choice([80, 96]),
                  112, rng.choice([192, 208]), rng.choice([320, 384])]
        depths = [1, 2, rng.choice([2, 3]), rng.choice([3, 4, 5]), 3, rng.choice([4, 5]), 1]
        spec = _net(widths, depths)
        if rng.random() < 0.1:   # same sizes, another kernel in stage 2: not comparable
            st = spec.stages[2]
            spec = spec.with_stage(2, replace(st, blocks=(replace(st.blocks[0], kernel=3),)
                                              + st.blocks[1:]))
        nets.append(spec)
    for i, spec in enumerate(nets):
        lat = float(rng.choice([10, 11, 12, 13]))   # ties on purpose
        for probe in nets[: i + 1: 3]:
            for below in (True, False):
                want = _brute_force(list(m.known.get(224, {}).values()), probe, below)
                got = m._nearest(probe, 224, below)
                assert (want is None and got is None) or (got is want), (i, below)
                found += want is not None
        m.add(spec, 224, lat)
        if rng.random() < 0.2:    # a re-read keeps its place and takes the new value
            m.add(nets[rng.randrange(i + 1)], 224, lat + 0.5)
    assert found > 100     # the neighbours exist: the comparison is not of Nones


@pytest.mark.slow
def test_a_chain_lacking_a_point_says_in_one_line_which_file_and_how(tmp_path, capsys):
    """`scale --method compound` with the README's table and LUT at a budget whose probes
    need 228 px, which the LUT lacks: one line, exit 2, naming both files and the remedies."""
    code = main(["scale", "--method", "compound", "--budget-ms", "20", "--latency",
                 f"table:{TABLE}", "--latency", f"lut:{LUT}", "--out",
                 str(tmp_path / "s.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    line = [x for x in err if x.startswith("error:")]
    assert len(line) == 1 and "at 228 px" in line[0] and str(TABLE) in line[0]
    assert "lut record" in line[0] and "--latency cpu" in line[0]
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_latency_scale_needs_a_device_and_the_base_networks_rows(tmp_path, capsys):
    args = ["search", "--budget-ms", "20", "--accuracy", "synthetic", "--resolutions", "240",
            "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s.sqlite")]
    assert main([*args, "--latency", f"table:{TABLE}", "--latency-scale", str(TABLE)]) == 2
    assert "give a device" in capsys.readouterr().err
    assert main([*args, "--network", "mbconv-tiny", "--latency", "cpu",
                 "--latency-scale", str(TABLE)]) == 2
    assert "has no row of mbconv-tiny" in capsys.readouterr().err


def _trace(path: Path, rows: list[dict]) -> Path:
    cols = ["resolution", "fingerprint", "widths", "depths", "latency_ms", "latency_from",
            "latency_provenance", "latency_ci_low_ms", "latency_ci_high_ms"]
    path.mkdir(parents=True)
    with open(path / "trace.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path / "trace.csv"


def test_check_monotone_finds_a_predicted_violation_and_calls_a_measured_one_a_tie(tmp_path):
    row = {"resolution": 224, "latency_ci_low_ms": "", "latency_ci_high_ms": ""}
    base = {**row, "fingerprint": "a", "widths": "16 24", "depths": "1 2",
            "latency_ms": 10.0, "latency_from": "table", "latency_provenance": "table"}
    bigger = {**row, "fingerprint": "b", "widths": "16 28", "depths": "1 2",
              "latency_ms": 9.9, "latency_from": "lut", "latency_provenance": "lut-calibrated"}
    other = {**row, "fingerprint": "c", "widths": "20 24", "depths": "1 1",
             "latency_ms": 5.0, "latency_from": "lut", "latency_provenance": "lut"}
    trace = _trace(tmp_path / "p", [base, bigger, other])
    [v] = violations(trace)
    assert v["kind"] == "predicted" and v["bigger"] == "b" and v["smaller"] == "a"
    assert check_main([str(tmp_path / "p")]) == 1
    live = [{**base, "latency_from": "cpu", "latency_provenance": "live",
             "latency_ci_low_ms": 9.8, "latency_ci_high_ms": 10.2},
            {**bigger, "latency_from": "cpu", "latency_provenance": "live",
             "latency_ci_low_ms": 9.7, "latency_ci_high_ms": 10.1}]
    [v] = violations(_trace(tmp_path / "m", live))
    assert v["kind"] == "measured" and v["tie"] is True
    assert check_main([str(tmp_path / "m")]) == 0


@pytest.mark.slow
def test_no_committed_trace_predicts_a_network_faster_than_one_it_contains(capsys):
    assert check_main([str(ROOT / "results")]) == 0, capsys.readouterr().out


def test_the_lut_hint_names_the_steps_a_network_needs_or_why_no_lut_of_the_space_holds_it():
    from types import SimpleNamespace

    from latency_lab.search.chain import lut_hint, lut_steps

    lut = SimpleNamespace(network=B0, resolutions=[224, 240], max_width_steps=[0, 0, 4, 5, 5, 4, 28],
                          max_depth_steps=1, statistic="median")
    # stage 3 widened by 6 RBIS width steps (80 -> 128), stage 5 one block deeper
    wide = _net((16, 24, 40, 128, 112, 192, 320), (1, 2, 2, 3, 3, 5, 1))
    assert lut_steps(B0, wide) == ([0, 0, 0, 6, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0])
    hint = lut_hint(lut, wide, 228)
    assert ("lut record --network efficientnet-b0 --resolutions 224,228,240 --max-width-steps "
            "0,0,4,6,5,4,28 --max-depth-steps 1 --statistic median") in hint
    # a width no number of steps gives, a shallower stage, a widened head: outside the space
    assert lut_steps(B0, _net((16, 24, 40, 82, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1))) is None
    assert lut_steps(B0, _net((16, 24, 40, 80, 112, 192, 320), (1, 1, 2, 3, 3, 4, 1))) is None
    head = replace(B0, head_width=1288)
    assert lut_steps(B0, head) is None
    assert "no `lut record` of efficientnet-b0's scaled space" in lut_hint(lut, head, 228)


@pytest.mark.slow
def test_the_load_pair_report_compares_any_two_committed_runs(tmp_path):
    """benchmarks/rbis_load_pair.py --pair: the committed 24-round pair read back from its
    folders (winners, loads, factors, monotone pairs), as for an A/A repeat at one load."""
    pair = load_benchmark("rbis_load_pair")
    runs = ROOT / "results/cpu/rbis-load-pair-r24"
    text = pair.write_pair(tmp_path, {"a": runs / "quiet", "b": runs / "busy"}, "t")
    assert (tmp_path / "pair.md").read_text() == text
    for run in ("quiet", "busy"):
        result = json.loads((runs / run / "result.json").read_text())
        assert f"{result['latency_ms']:.3f} ms" in text
    assert "**Same winner: no.**" in text and "2.59" in text and "5.61" in text
