"""benchmarks/cuda_sweep.py end to end against a simulated GPU (tests/fake_gpu.py), and its
refusal without one. The real run is on a GPU machine (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "cuda_sweep.py"


def run(args, tmp_path, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"),
           "LATENCY_LAB_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=tmp_path)


@pytest.mark.slow
def test_without_a_gpu_it_stops_in_one_line(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run(["--out", str(tmp_path / "o")], tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "needs a CUDA GPU" in r.stderr


@pytest.mark.slow
def test_four_sweeps_within_the_budget_on_a_simulated_gpu(tmp_path):
    out = tmp_path / "o"
    r = run(["--device", "fake_gpu:FakeCudaDevice", "--out", str(out), "--budget-s", "14",
             "--resolutions", "160:400:16"], tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["elapsed_s"] < 14 + 10
    assert summary["big_batch"] > 1 and summary["probe"]
    names = [s["sweep"] for s in summary["sweeps"]]
    assert names == [f"efficientnet-b0_{p}_b{b}" for p, b in
                     (("fp16", 1), ("fp32", 1), ("fp16", summary["big_batch"]),
                      ("fp32", summary["big_batch"]))]
    for s in summary["sweeps"]:
        frame = pd.read_csv(out / f"{s['sweep']}.csv")
        assert len(frame) == 16 and s["measured"] >= 1
        assert {"setup_s", "execution", "launch_bound"} <= set(frame.columns)
        assert (out / f"{s['sweep']}_jumps" / "candidates.csv").exists()
    # batch 1 on the simulated GPU is launch-bound when eager: the note says so
    assert any("eager execution would have been launch-bound" in n
               for n in summary["sweeps"][0]["notes"])
    assert (out / "efficientnet-b0_cuda_sweeps.png").stat().st_size > 20_000
    assert "## efficientnet-b0_fp32_b1" in (out / "summary.md").read_text()
