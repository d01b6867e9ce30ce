"""Tests of the detector that reads the network: the places where a coarse feature map grows
(latency_lab.network.lattice) and the joint model of trend + steps there
(latency_lab.sweeps.jumps_lattice, `detect(method="lattice")`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latency_lab.network.lattice import lattice_places, output_strides
from latency_lab.network.presets import load_network
from latency_lab.network.spec import NetworkSpec
from latency_lab.sweeps import jumps as J

GRID = np.arange(160, 401, 4)
RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def b0():
    return load_network("efficientnet-b0")


def curve(steps_pct: dict[int, float], rel=0.0, seed=0, grid=GRID) -> np.ndarray:
    """A quadratic trend with steps of the given % after the given resolutions, and relative
    Gaussian noise."""
    r = grid.astype(float)
    y = 2.0 + 4e-4 * r ** 2
    for at, pct in steps_pct.items():
        y = y * np.where(r > at, 1 + pct / 100, 1.0)
    return y * (1 + rel * np.random.default_rng(seed).normal(size=len(r)))


def frame(y, half_pct, grid=GRID) -> pd.DataFrame:
    half = np.asarray(y) * half_pct / 100
    return pd.DataFrame({"resolution": grid, "latency_ms": y, "ci_low_ms": y - half,
                         "ci_high_ms": y + half})


def befores(result):
    return [int(v) for v in result.jumps["resolution_before"]]


# -- the places ---------------------------------------------------------------------------

def test_b0_places_are_after_every_multiple_of_16_with_the_stage_that_grows(b0):
    places = lattice_places(b0, GRID)
    assert [p.before for p in places] == list(range(160, 385, 16))
    by = {p.before: p for p in places}
    assert by[224].stride == 32 and (by[224].size_before, by[224].size_after) == (7, 8)
    assert by[224].stages == (5, 6) and "head" in by[224].sites and by[224].strides == (32, 16)
    assert by[240].stride == 16 and by[240].stages == (3, 4)
    assert by[224].label == "1/32 map 7->8: stages 5-6 + head"
    assert by[240].label == "1/16 map 15->16: stages 3-4"
    # a map grows just after a multiple of its stride: 224 -> 225 is a place, 223 -> 224 not
    assert [p.before for p in lattice_places(b0, [222, 223, 224, 225, 226])] == [224]


def test_places_follow_the_strides_of_the_walk():
    """A network whose deepest stride is 8 steps at its coarsest map; one with a stride-64
    stage has its strongest places at multiples of 64; the grid may have gaps."""
    shallow = NetworkSpec.from_dict({
        "name": "shallow", "resolution": 64, "num_classes": 10, "activation": "relu",
        "stem": {"width": 8, "kernel": 3, "stride": 2}, "head": {"width": 32},
        "stages": [{"width": 16, "depth": 1, "kernel": 3, "expansion": 1, "stride": 2},
                   {"width": 16, "depth": 1, "kernel": 3, "expansion": 1, "stride": 2}]})
    assert max(s for _, _, s in output_strides(shallow)) == 8
    assert [p.before for p in lattice_places(shallow, range(64, 97, 4))] == [64, 72, 80, 88]
    deep = load_network("efficientnet-b0").to_dict()
    deep["stages"].append({"width": 64, "depth": 1, "kernel": 3, "expansion": 1, "stride": 2})
    deep = NetworkSpec.from_dict(deep)
    grid = [160, 168, 184, 256, 260, 320, 330]   # gaps: a break may span several multiples
    by = {p.before: p for p in lattice_places(deep, grid)}
    assert by[256].stride == 64 and by[256].stages == (7,)
    assert by[168].stride == 16 and by[184].stride == 64 and by[184].strides == (64, 32, 16)
    assert by[320].stride == 64 and lattice_places(deep, [257, 260, 263]) == []


# -- the detector -------------------------------------------------------------------------

def test_steps_at_places_are_found_with_size_ci_and_stage(b0):
    """+10% and +6% steps at the 1/32 places and +4.5% at a 1/16 place, +-2% CIs (sigma 1%),
    noise as the CIs say: all three, each inside its interval, named by its stage."""
    truth = {192: 10.0, 256: 6.0, 304: 4.5}
    hits = 0
    for seed in range(10):
        res = J.detect(frame(curve(truth, 0.01, seed), 2.0), network=b0)
        assert res.method == "lattice"
        hits += set(befores(res)) == set(truth)
        row = res.jumps.set_index("resolution_before").loc[256]
        assert row.ci_low_pct < row.jump_pct < row.ci_high_pct
        assert row.stride == 32 and row.place.endswith("stages 5-6 + head")
    assert hits >= 8


def test_a_step_away_from_the_places_needs_the_stricter_bar(b0):
    """A +2.5% step after 232 (no place): z about 3 with +-1% CIs -- a jump at a place would
    pass, off the places it must reach z_other (5); a +10% step there is found, unnamed."""
    small = J.detect(frame(curve({232: 2.5}, 0.005, 1), 1.0), network=b0)
    assert 232 not in befores(small)
    big = J.detect(frame(curve({232: 10.0}, 0.005, 1), 1.0), network=b0)
    assert befores(big) == [232]
    assert big.jumps.iloc[0].stride == 0 and big.jumps.iloc[0].place == ""
    lax = J.detect(frame(curve({232: 2.5}, 0.005, 1), 1.0), network=b0, z_other=2.5)
    assert 232 in befores(lax)


@pytest.mark.slow
def test_no_steps_no_jumps_and_heavy_tails_do_not_make_any(b0):
    """Smooth curves, noise at the CIs' scale. Gaussian: a third of a false step a curve, all
    at the places (14 at z 2.5, both signs), none at the 40 other breaks (z 5). Student-t with
    3 dof, a busy machine's tails and a variance 3x what the CIs say: twice that at the places
    (their z spread 1.3x, measured), hardly any away from them."""
    for gen, at_most, off_at_most in ((lambda g: g.normal(size=len(GRID)), 12, 0),
                                      (lambda g: g.standard_t(3, len(GRID)), 22, 2)):
        rng = np.random.default_rng(7)
        false = off = 0
        for _ in range(20):
            y = curve({}) * (1 + 0.01 * gen(rng))
            res = J.detect(frame(y, 1.96), network=b0)
            found = befores(res) + [int(v) for v in res.drops["resolution_before"]]
            false += len(found)
            off += sum(1 for b in found if b % 16)
        assert false <= at_most and off <= off_at_most


def test_invariant_to_scaling_and_shifting_latency(b0):
    y = curve({192: 8.0, 288: 5.0}, 0.01, 3)
    base = J.detect(frame(y, 2.0), network=b0)
    half = y * 0.02
    moved = y * 3.0 + 7.0
    other = pd.DataFrame({"resolution": GRID, "latency_ms": moved,
                          "ci_low_ms": moved - 3 * half, "ci_high_ms": moved + 3 * half})
    res = J.detect(other, network=b0)
    assert befores(res) == befores(base)
    assert np.allclose(res.jumps["z"], base.jumps["z"], rtol=1e-6)


def test_a_place_next_to_an_end_stays_in_the_model_but_is_not_reported(b0):
    """160 is a multiple of 32: the step after the first point is one odd point, never a jump,
    but the model keeps its term so the trend is not bent by it."""
    y = curve({160: 15.0, 224: 8.0}, 0.003, 2)
    res = J.detect(frame(y, 0.6), network=b0)
    assert befores(res) == [224]
    assert 0 not in {g.k for g in res.tests}


@pytest.mark.slow
def test_too_coarse_a_grid_or_an_unexplained_curve_falls_back_and_says_why(b0):
    coarse = np.arange(160, 401, 16)
    res = J.detect(frame(curve({224: 10.0}, 0.002, 0, coarse), 0.5, coarse), network=b0)
    assert res.method == "model" and any("too few for a step at each" in n for n in res.notes)
    # a sawtooth between the places, measured with +-0.05% CIs: the places cannot explain it
    saw = curve({}) * (1 + 0.03 * ((GRID // 8) % 2))
    res = J.detect(frame(saw, 0.05), network=b0)
    assert res.method == "model" and any("unexplained" in n for n in res.notes)


def test_without_cis_the_noise_is_the_models_residual_scale(b0):
    y = curve({192: 10.0, 256: 7.0, 320: 6.0}, 0.01, 4)
    res = J.detect(pd.DataFrame({"resolution": GRID, "latency_ms": y}), network=b0)
    assert res.method == "lattice" and "scaled" in res.noise_source
    assert {192, 256, 320} <= set(befores(res))


@pytest.mark.parametrize("name", ["a", "a_run2", "b", "b_run2", "c"])
def test_the_committed_quiet_cpu_sweeps_keep_every_step_of_6_pct(b0, name):
    """The five quiet sweeps of the cpu host: every step of the model's fit of 6% or more is a
    jump, each at a multiple of 16 (the network's places), none elsewhere."""
    res = J.detect(pd.read_csv(RESULTS / "cpu" / f"efficientnet-b0_sweep_{name}.csv"),
                   network=b0)
    assert res.method == "lattice"
    big = {int(res.curve.resolution[g.k]) for g in res.tests if g.z > 0
           and 100 * g.step_ms / (g.left_coef[0] + g.left_coef[1] * res.curve.resolution[g.k])
           >= 6.0}
    assert big and big <= set(befores(res))
    assert all(b % 16 == 0 for b in befores(res))
    assert {192, 224, 256, 288, 320, 384} <= set(befores(res))


# -- the floor: a busy machine's sweep ------------------------------------------------------

BUSY = RESULTS / "cpu" / "busy"


def test_the_floor_is_used_when_the_medians_cis_say_busy(b0):
    from latency_lab.sweeps.floor import choose

    quiet = pd.read_csv(RESULTS / "cpu" / "efficientnet-b0_sweep_c.csv")
    assert choose(quiet)[1] == "median"                    # no floor_ms column
    y = curve({224: 10.0}, 0.0, 0)
    f = frame(y, 1.0).assign(floor_ms=y * 0.98)
    assert choose(f)[1] == "median"                        # CIs +-1%: quiet
    busy = frame(y, 6.0).assign(floor_ms=y * 0.98)
    table, used = choose(busy)
    assert used == "floor" and "ci_low_ms" not in table and np.allclose(table["latency_ms"],
                                                                        y * 0.98)
    assert choose(busy, "median")[1] == "median" and choose(f, "floor")[1] == "floor"
    with pytest.raises(J.JumpInputError, match="no floor_ms column"):
        choose(quiet, "floor")
    with pytest.raises(J.JumpInputError, match="unknown curve"):
        choose(quiet, "mean")


@pytest.mark.slow
def test_a_real_busy_sweep_finds_its_steps_on_the_floor(b0, tmp_path):
    """The busy sweep of this host beside its other jobs (load 4.6-8.1, median CI +-13%): on
    its medians no detector finds the steps; on the floor of its raw samples the lattice
    finds the steps at the multiples of 32, and nothing off the 16-px lattice."""
    import sys

    from latency_lab.sweeps.report import analyze_sweep

    sys.path.insert(0, str(RESULTS.parent / "benchmarks"))
    from busy_jumps_benchmark import curve_from_samples

    samples = pd.read_csv(BUSY / "efficientnet-b0_busy_bg_samples.csv.gz")
    sweep = curve_from_samples(samples)
    assert J.detect(sweep, network=b0).jumps.empty
    a = analyze_sweep(sweep, tmp_path, network=b0, plot=False)
    found = set(a.jumps["resolution_before"])
    assert len(found & {192, 224, 256, 288, 320, 352, 384}) >= 5
    assert all(b % 16 == 0 for b in found)
    assert any("found on the floor" in n for n in a.result.notes)
    # the candidates keep the median's latency, not the floor's
    kept = a.candidates[a.candidates["kept"]]
    med = dict(zip(sweep["resolution"], sweep["latency_ms"]))
    assert all(np.isclose(row.latency_ms, med[row.resolution]) for row in kept.itertuples())


def test_the_committed_busy_recordings_hold_every_sample_of_their_sweeps():
    """Each busy sweep's exported raw samples are all of its samples, point by point, and its
    load log brackets the run (what benchmarks/busy_jumps_benchmark.py rebuilds curves from)."""
    csvs = sorted(BUSY.glob("efficientnet-b0_busy_*.csv"))
    assert csvs
    for csv in csvs:
        samples = BUSY / f"{csv.stem}_samples.csv.gz"
        if not samples.is_file():
            continue
        written = pd.read_csv(csv).set_index("resolution")["n_samples"]
        counted = pd.read_csv(samples).groupby("resolution").size()
        assert counted.reindex(written.index, fill_value=0).equals(written), csv.name
        log = (BUSY / f"{csv.stem}_load.txt").read_text()
        assert "start:" in log and "end:" in log and "loadavg" in log
