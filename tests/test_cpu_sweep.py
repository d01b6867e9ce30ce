"""End to end on the real cpu device: LiteRT interpreter, SQLite store, CSV, resume."""

import re

import pandas as pd
import pytest

from latency_lab.cli.app import main

pytestmark = pytest.mark.slow

QUICK = ["--min-rounds", "3", "--max-rounds", "4", "--runs-per-visit", "3", "--ci-target-pct", "50"]


def test_sweep_command_writes_the_curve_and_resumes(tmp_path, tiny, capsys):
    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    store, out = tmp_path / "store.sqlite", tmp_path / "sweep.csv"
    args = ["sweep", "--device", "cpu", "--network", str(net), "--resolutions", "64:120:8",
            "--out", str(out), "--store", str(store), *QUICK]
    assert main(args) == 0
    df = pd.read_csv(out)
    assert list(df["resolution"]) == list(range(64, 121, 8))
    report = tmp_path / "sweep_jumps"  # the jump analysis runs at the end of a sweep
    for name in ("jumps.csv", "drops.csv", "candidates.csv", "sweep.png"):
        assert (report / name).stat().st_size > 0
    err = capsys.readouterr().err
    assert "candidate resolutions" in err
    # plain progress lines, one per round: stderr is not a terminal
    assert re.search(r"^round [34], \d/8 points at the CI target", err, re.M)
    for col in ("latency_ms", "ci_low_ms", "ci_high_ms", "n_samples", "p5_ms", "p95_ms",
                "device", "runtime", "fingerprint", "threads", "stop_reason"):
        assert col in df.columns
    assert (df["ci_low_ms"] <= df["latency_ms"]).all() and (df["latency_ms"] <= df["ci_high_ms"]).all()
    assert (df["n_samples"] >= 9).all() and set(df["device"]) == {"cpu"}
    assert (df["fingerprint"] == tiny.fingerprint).all() and (df["threads"] == 1).all()
    assert df["latency_ms"].iloc[-1] > df["latency_ms"].iloc[0]  # 4x the pixels costs more
    # the same sweep again reuses the store: identical figures
    assert main(args + ["--no-jumps"]) == 0
    assert "8 finished point(s) reused" in " ".join(capsys.readouterr().err.split())
    again = pd.read_csv(out)
    pd.testing.assert_series_equal(again["latency_ms"], df["latency_ms"])


def test_cpu_device_info_and_samples(tiny, model_dir):
    from latency_lab.devices.cpu import CpuDevice

    dev = CpuDevice(threads=1, model_dir=model_dir)
    info = dev.info()
    assert info.runtime == "litert" and info.threads == 1 and info.extra["delegate"] == "xnnpack"
    run = dev.sample(tiny, 64, runs=5, warmup_runs=1)
    assert len(run.samples_ms) == 5 and all(s > 0 for s in run.samples_ms)
    other = CpuDevice(threads=2, model_dir=model_dir).info()
    assert other.context_key != info.context_key  # threads change the context


def test_adaptive_sweep_says_whether_the_decision_settled(tmp_path, tiny, capsys):
    """A real sweep whose CI target cannot be met: after 5 rounds of every point the planner
    decides (stop reason decided, some points then measured more than others) or the rounds
    run out; either way the sweep says which, and candidates.csv says whether it settled."""
    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    out = tmp_path / "sweep.csv"
    assert main(["sweep", "--device", "cpu", "--network", str(net), "--resolutions", "64:128:4",
                 "--out", str(out), "--store", str(tmp_path / "s.sqlite"), "--min-rounds", "3",
                 "--max-rounds", "9", "--runs-per-visit", "3", "--ci-target-pct", "0.01"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    df = pd.read_csv(out)
    reasons = set(df["stop_reason"])
    assert reasons <= {"decided", "max_rounds"}
    assert (df["n_rounds"] >= 5).all()
    if "decided" in reasons:
        assert "candidate decision settled" in err and "stop reason decided" in err
    else:
        assert "candidate decision" in err
    cands = pd.read_csv(tmp_path / "sweep_jumps" / "candidates.csv")
    assert {"jump_z", "jump_ci_low_pct", "jump_ci_high_pct", "place", "decision"} <= set(cands)
