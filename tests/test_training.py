"""The training recipe and loop: resume after a kill, cached runs, divergence, options."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from latency_lab.training.imagefolder import scan
from latency_lab.training.synth import SynthConfig, generate
from latency_lab.training.train import (Recipe, Runtime, TrainingDiverged, TrainingError, load_weights,
                                  runs_dir, train)

DATA = SynthConfig(classes=4, per_class=8, val_per_class=3, size=32, seed=0)
FAST = dict(batch=8, warmup=0.5)
QUIET = Runtime(workers=0, progress=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return generate(DATA, tmp_path_factory.mktemp("train") / "set")


def test_schedule_warms_up_then_decays_to_zero():
    r = Recipe(epochs=4, batch=64, warmup=1)
    assert r.base_lr == pytest.approx(0.4 * 64 / 256)
    lrs = [r.lr_at(s, 10) for s in range(40)]
    assert lrs[0] == pytest.approx(r.base_lr / 10) and lrs[9] == pytest.approx(r.base_lr)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01 * r.base_lr
    assert Recipe(opt="rmsprop", batch=256).base_lr == pytest.approx(0.016)
    with pytest.raises(TrainingError, match=r"warmup=3 must be in \[0, epochs\]"):
        Recipe(epochs=2, warmup=3)
    with pytest.raises(TrainingError, match="opt=adam must be sgd or rmsprop"):
        Recipe(opt="adam")


def test_a_training_interrupted_after_an_epoch_resumes_to_the_same_weights(tiny, data_dir,
                                                                          tmp_path, monkeypatch):
    folder = scan(data_dir)
    recipe = Recipe(epochs=3, **FAST)
    whole = train(tiny, 32, folder, recipe, QUIET)
    assert whole.resumed_from == 0 and not whole.cached and len(whole.history) == 3
    reference = load_weights(whole)

    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "other-cache"))

    def stop_after_first_epoch(line: str) -> None:
        if "epoch 1/3" in line:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(tiny, 32, folder, recipe, QUIET, log=stop_after_first_epoch)
    assert (runs_dir() / whole.key / "checkpoint.pt").exists()
    resumed = train(tiny, 32, folder, recipe, QUIET)
    assert resumed.key == whole.key and resumed.resumed_from == 1
    assert resumed.top1 == whole.top1
    for name, tensor in load_weights(resumed).items():
        assert torch.allclose(tensor.float(), reference[name].float(), atol=1e-6), name
    assert not (runs_dir() / whole.key / "checkpoint.pt").exists()   # final.pt replaces it
    again = train(tiny, 32, folder, recipe, QUIET)
    assert again.cached and again.top1 == whole.top1


def test_the_run_key_covers_what_changes_the_weights(tiny, data_dir):
    folder = scan(data_dir)
    base = train(tiny, 32, folder, Recipe(epochs=1, **FAST), QUIET)
    keys = {base.key,
            train(tiny, 32, folder, Recipe(epochs=1, seed=1, **FAST), QUIET).key,
            train(tiny, 40, folder, Recipe(epochs=1, **FAST), QUIET).key,
            train(tiny, 32, folder, Recipe(epochs=1, **FAST), QUIET, init="other").key}
    assert len(keys) == 4
    # how the run is executed (threads, workers, the bar) is not part of the key
    assert train(tiny, 32, folder, Recipe(epochs=1, **FAST),
                 Runtime(workers=1, threads=2, progress=False)).cached
    assert base.history[0]["images_per_s"] > 0 and 0 <= base.top1 <= 100


def test_a_diverging_training_is_one_error(tiny, data_dir):
    with pytest.raises(TrainingDiverged, match=r"diverged: loss (nan|inf) at epoch 1, step \d+ "
                                               r"\(lr [0-9.e+]+\); try a lower lr="):
        train(tiny, 32, scan(data_dir), Recipe(epochs=1, batch=8, lr=1e30, warmup=0), QUIET)


def test_cuda_without_a_gpu_is_refused(tiny, data_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(TrainingError, match="device=cuda but torch sees no CUDA GPU"):
        train(tiny, 32, scan(data_dir), Recipe(epochs=1, **FAST), Runtime(device="cuda"))
    with pytest.raises(TrainingError, match="use cpu or cuda"):
        train(tiny, 32, scan(data_dir), Recipe(epochs=1, **FAST), Runtime(device="tpu"))


KILLED = """
import sys
from latency_lab.training.imagefolder import scan
from latency_lab.network.presets import get
from latency_lab.training.train import Recipe, Runtime, train
r = train(get("mbconv-tiny"), 32, scan(sys.argv[1]), Recipe(epochs=12, batch=8, warmup=0.5),
          Runtime(workers=0, progress=False), log=lambda line: print(line, flush=True))
print("top1", r.top1, "resumed_from", r.resumed_from, flush=True)
"""


@pytest.mark.slow
def test_a_killed_process_loses_at_most_the_epoch_in_progress(data_dir, tmp_path):
    """SIGKILL (no cleanup at all) during epoch 3 or later; the rerun starts after the last
    epoch whose checkpoint was written."""
    env = {**os.environ, "LATENCY_LAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(data_dir)], env=env,
                            stdout=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "epoch 2/12" in line:
            time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, seen
    runs = list((tmp_path / "cache" / "training").iterdir())
    assert len(runs) == 1 and (runs[0] / "checkpoint.pt").exists()
    done = torch.load(runs[0] / "checkpoint.pt", weights_only=True)["epoch"]
    assert done >= 2
    rerun = subprocess.run([sys.executable, "-c", KILLED,
                            str(data_dir)], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    first = next(line for line in rerun.stdout.splitlines() if "epoch" in line)
    assert f"epoch {done + 1}/12" in first
    assert f"resumed_from {done}" in rerun.stdout
    assert math.isfinite(float(rerun.stdout.split("top1 ")[1].split()[0]))
