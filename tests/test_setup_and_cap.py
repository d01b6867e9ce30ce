"""Per-shape set-up, the time cap between any two visits, partial results and the
launch-bound check, on GPU-like fakes (tests/fake_gpu.py) where no GPU exists."""

from __future__ import annotations

import math
import re
import time

import pandas as pd
import pytest

from fake_gpu import SlowSetupDevice
from latency_lab.cli.app import main
from latency_lab.devices.cuda import launch_check
from latency_lab.measure.protocol import Interrupted, Protocol, measure_points
from latency_lab.measure.store import Store

RES = [64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152]


@pytest.mark.slow
def test_the_cap_holds_in_the_first_round_and_unreached_points_resume(tmp_path, tiny):
    """12 new shapes at 0.25 s of set-up each against a 1 s cap: the call ends one set-up
    after the cap, the points it reached have samples and their set-up time, the others are
    rows without samples that the next run measures."""
    dev = SlowSetupDevice(setup_s=0.25)
    p = Protocol(runs_per_visit=2, min_rounds=3, max_rounds=3, time_cap_s=1.0)
    statuses = []

    def progress(status):
        statuses.append(status.note)

    with Store(tmp_path / "s.sqlite") as store:
        t0 = time.monotonic()
        ms = measure_points(dev, [(tiny, r) for r in RES], store, p, progress=progress)
        took = time.monotonic() - t0
        reached = [m for m in ms if m.measured]
        # the cap plus the one set-up under way when it passed; the slack is one more set-up
        # as this host measured it (a busy host stretches both alike)
        slowest = max(m.facts["setup_s"] for m in reached)
        assert took < p.time_cap_s + 2 * slowest
        assert 2 <= len(reached) <= 6 and len(ms) == len(RES)
        assert {m.stop_reason for m in ms} == {"time_cap"}
        for m in reached:
            assert m.facts["setup_s"] >= 0.25 and m.facts["autotuned"] is True
            assert m.stats.count == 2 and m.row()["setup_s"] >= 0.25
        for m in ms:
            if not m.measured:
                row = m.row()
                assert row["n_samples"] == 0 and math.isnan(row["latency_ms"])
        shown = [s for s in statuses if s]
        assert shown[0].startswith("setting up ") and shown[0].endswith(" px")
        assert re.match(r"set-up of \d+ px took 0\.[23] s \(all set-ups 0 s\)", shown[1])
        # the next run measures what was not reached; what was reached is done
        again = SlowSetupDevice(setup_s=0.0)
        ms2 = measure_points(again, [(tiny, r) for r in RES], store,
                             Protocol(runs_per_visit=2, min_rounds=1, max_rounds=1))
        assert all(m.measured for m in ms2)
        assert sorted(again.setups) == sorted(m.resolution for m in ms if not m.measured)


def test_an_interruption_carries_every_point_as_far_as_it_got(tmp_path, tiny, curve_device):
    with Store(tmp_path / "s.sqlite") as store, pytest.raises(Interrupted) as err:
        measure_points(curve_device(fail_after=5), [(tiny, r) for r in RES[:4]], store,
                       Protocol(runs_per_visit=2, min_rounds=3))
    got = err.value.measurements
    assert [m.resolution for m in got] == RES[:4]
    assert {m.stop_reason for m in got} == {"interrupted"}
    assert sum(m.stats.count for m in got) == 5 * 2


@pytest.mark.slow
def test_cli_sweep_writes_the_points_measured_before_the_cap(tmp_path, tiny, capsys):
    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    out = tmp_path / "sweep.csv"
    rc = main(["sweep", "--device", "fake_gpu:SlowSetupDevice", "-O", "setup_s=0.2",
               "--network", str(net), "--resolutions", "64:152:8", "--out", str(out),
               "--time-cap-s", "0.7", "--min-rounds", "2", "--max-rounds", "2",
               "--runs-per-visit", "2", "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert rc == 0
    df = pd.read_csv(out)
    assert len(df) == 12 and set(df["stop_reason"]) == {"time_cap"}
    reached = df[df["n_samples"] > 0]
    assert 1 <= len(reached) < 12 and (reached["setup_s"] >= 0.2).all()
    assert df.loc[df["n_samples"] == 0, "latency_ms"].isna().all()
    assert f"came before {12 - len(reached)} point(s) were measured" in err
    assert "no jump analysis" in err or "jumps after" in err


def test_cli_sweep_interrupted_still_writes_its_csv(tmp_path, tiny, capsys):
    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    out = tmp_path / "sweep.csv"
    rc = main(["sweep", "--device", "fake_gpu:SlowSetupDevice", "-O", "setup_s=0",
               "-O", "fail_after=7", "--network", str(net), "--resolutions", "64:96:8",
               "--out", str(out), "--store", str(tmp_path / "s.sqlite")])
    assert rc == 130
    df = pd.read_csv(out)
    assert len(df) == 5 and df["n_samples"].sum() == 7 * 8
    assert set(df["stop_reason"]) == {"interrupted"}
    assert "interrupted: wrote" in capsys.readouterr().err


def test_launch_check_rules():
    # a graph replay far under the eager time: eager is launch-bound
    f = launch_check(eager_ms=4.3, host_ms=4.1, graph_ms=1.0)
    assert f["eager_launch_bound"] and f["eager_over_graph"] == pytest.approx(4.3)
    assert not launch_check(eager_ms=40.0, host_ms=3.0, graph_ms=39.0)["eager_launch_bound"]
    # no graph: the host needing as long to launch as the GPU to run it
    assert launch_check(eager_ms=4.3, host_ms=4.0, graph_ms=None)["eager_launch_bound"]
    assert not launch_check(eager_ms=40.0, host_ms=3.0, graph_ms=None)["eager_launch_bound"]


@pytest.mark.parametrize("graphs", [False, True])
def test_a_launch_bound_sweep_says_so_in_the_csv_and_on_the_terminal(tmp_path, tiny, capsys,
                                                                      graphs):
    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    out = tmp_path / "sweep.csv"
    rc = main(["sweep", "--device", "fake_gpu:FakeCudaDevice", "-O", f"cuda_graphs={graphs}",
               "--network", str(net), "--resolutions", "64:400:16", "--out", str(out),
               "--min-rounds", "2", "--max-rounds", "2", "--runs-per-visit", "2", "--no-jumps",
               "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert rc == 0
    df = pd.read_csv(out)
    small, large = df[df["resolution"] <= 224], df[df["resolution"] >= 336]
    assert set(df["execution"]) == {"graph" if graphs else "eager"}
    if graphs:
        assert not df["launch_bound"].any()
        assert (small["eager_over_graph"] >= 1.25).all() and (large["eager_over_graph"] < 1.25).all()
        assert "eager execution would have been launch-bound at" in err
        assert small["latency_ms"].is_monotonic_increasing   # the GPU's curve, not the host's
    else:
        assert small["launch_bound"].all() and not large["launch_bound"].any()
        assert "LAUNCH-BOUND: " in err and "points measure the host, not the GPU" in err
        assert small["latency_ms"].nunique() == 1               # flat: the host's launch time
