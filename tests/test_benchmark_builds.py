"""Three builds of benchmark_model, as their sources behave (tests/host_benchmark_model.py): the
fake on its own, then the pixel2 driver end to end on each, over the loopback ADB server.

current: LiteRT@f6745779; mid: TensorFlow 2.x (tensorflow@08df8c40/@010f3edc); tf1: TF 1.x
contrib (the Pixel 2 era). What differs and matters to the driver: where the log goes, what a
flag it does not know does, the order of resize and delegate, percentiles, exit statuses.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fake_adb import FakeAdbServer
from latency_lab.cli.app import main
from latency_lab.devices import tflite_bench
from latency_lab.measure.api import DeviceError, get_device
from latency_lab.models.files import tflite_path

SERIAL = "FA79Y1A04111"
HOST_BINARY = Path(__file__).with_name("host_benchmark_model.py")
BUILDS = ("current", "mid", "tf1")
pytestmark = pytest.mark.slow   # each invocation starts Python and LiteRT (about 0.3 s)


def build_binary(folder: Path, build: str) -> Path:
    """The fake binary of one build, executable with this Python (one file, one hash, each)."""
    text = HOST_BINARY.read_text()
    assert text.count('\nBUILD = "current"\n') == 1
    path = folder / f"benchmark_model_{build}"
    path.write_text(f"#!{sys.executable}\n" + text.replace('\nBUILD = "current"\n',
                                                          f'\nBUILD = "{build}"\n'))
    path.chmod(0o755)
    return path


@pytest.fixture
def model(tiny, model_dir) -> str:
    return str(tflite_path(tiny, model_dir, "direct"))


def run(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


def argv(model: str, input_layer: str = "image", *extra: str) -> list[str]:
    return tflite_bench.benchmark_command("bm", model, 48, runs=3, warmup_runs=2,
                                          input_layer=input_layer, extra_flags=extra)[1:]


# -- the fake, build by build ----------------------------------------------------------------------

def test_current_warns_on_unknown_flags_logs_to_stdout_and_resizes_before_the_delegate(
        tmp_path, model):
    binary = build_binary(tmp_path, "current")
    r = run(binary, *argv(model, "input_1", "--bogus=1"))
    assert r.returncode == 0
    out = r.stdout.splitlines()
    assert all(line.startswith(("INFO: ", "WARN: ")) or not line for line in out)
    assert "WARN: Unconsumed cmdline flags: --bogus=1" in out
    assert "INFO: Use xnnpack: [1]" in out and "INFO: Min runs duration (seconds): [0]" in out
    # the name check (and the resize) come before the delegate in Init()
    warn = out.index("WARN: Tensor # 0 is named image but flags call it input_1")
    assert warn < out.index("INFO: Explicitly applied XNNPACK delegate, and the model graph will "
                            "be completely executed by the delegate.")
    stats = [line for line in out if "count=" in line]
    assert len(stats) == 2 and all(" p5=" in s and " median=" in s and " p95=" in s for s in stats)
    assert "INFO:" not in r.stderr.replace("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "")
    # failure: ERROR lines on stderr, exit status 1
    r = run(binary, "--graph=/nonexistent.tflite")
    assert r.returncode == 1 and "ERROR: Benchmarking failed." in r.stderr


def test_mid_applies_the_delegate_before_the_resize_and_has_no_percentiles(tmp_path, model):
    r = run(build_binary(tmp_path, "mid"), *argv(model, "input_1", "--bogus=1"))
    assert r.returncode == 0
    out = r.stdout.splitlines()
    assert "WARN: Unconsumed cmdline flags: --bogus=1" in out
    going = out.index("INFO: Going to apply 1 delegates one after another.")
    applied = out.index("INFO: Explicitly applied XNNPACK delegate, and the model graph will be "
                        "completely executed by the delegate.")
    assert going < applied < out.index("WARN: Tensor # 0 is named image but flags call it input_1")
    stats = [line for line in out if "count=" in line]
    assert len(stats) == 2 and not any("p5=" in s for s in stats)
    parsed = tflite_bench.parse_benchmark_output(r.stdout)
    assert parsed.summary_format == "current" and tflite_bench.timed_runs(parsed).count == 3


def test_tf1_ignores_unknown_flags_silently_and_fails_with_exit_status_0_or_an_abort(tmp_path, model):
    binary = build_binary(tmp_path, "tf1")
    args = argv(model, "image", "--bogus=1")
    r = run(binary, *args)
    assert r.returncode == 0 and r.stdout == ""          # everything on stderr
    assert "Unconsumed" not in r.stderr and "xnnpack" not in r.stderr.lower()
    lines = r.stderr.splitlines()
    assert "Running benchmark for 3 iterations " in lines and "Use nnapi : [0]" in lines
    parsed = tflite_bench.parse_benchmark_output(r.stderr)
    assert parsed.summary_format == "legacy" and tflite_bench.timed_runs(parsed).count == 3
    report = tflite_bench.applied(args, r.stderr)
    assert report.delegate == "none" and report.differs
    # the flags the driver passes have known parameter lines; --bogus has none to miss, and
    # TF 1.x lists nothing as unconsumed, so nothing tells of it
    assert set(report.ignored) == {"--use_xnnpack=true", "--min_secs=0", "--warmup_min_secs=0"}
    # a missing --graph: an error line, and exit status 0
    r = run(binary, "--num_runs=1")
    assert r.returncode == 0 and tflite_bench.error_lines(r.stderr) == [
        "Please specify the name of your TF Lite input file with --graph"]
    # an input named otherwise: TFLITE_BENCHMARK_CHECK_EQ aborts
    r = run(binary, *argv(model, "input_1"))
    assert r.returncode == -signal.SIGABRT
    assert "Tensor # 0 is named image but flags call it input_1" in r.stderr


@pytest.mark.parametrize("build", BUILDS)
def test_every_build_reads_back_what_it_applied(tmp_path, model, build):
    binary = build_binary(tmp_path, build)
    r = run(binary, *argv(model))
    report = tflite_bench.applied(argv(model), r.stdout + r.stderr)
    if build == "tf1":
        assert (report.delegate, report.asked, report.differs) == ("none", "xnnpack", True)
    else:
        assert report == tflite_bench.Applied("xnnpack", "xnnpack", ()) and report.note() == ""
    # --use_xnnpack=false: no delegate, as asked (TF 1.x: ignored, and none there anyway)
    off = tflite_bench.benchmark_command("bm", model, 48, runs=1, warmup_runs=1,
                                         input_layer="image", xnnpack=False)[1:]
    r = run(binary, *off)
    report = tflite_bench.applied(off, r.stdout + r.stderr)
    assert (report.delegate, report.asked, report.differs) == ("none", "none", False)
    assert "Explicitly applied" not in r.stdout and "XNNPACK delegate for CPU" not in r.stderr


# -- the driver on each build --------------------------------------------------------------------

@pytest.fixture
def adb(tmp_path, monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    with FakeAdbServer(tmp_path / "adb") as server:
        yield server


@pytest.mark.parametrize("build", BUILDS)
def test_a_sweep_records_what_each_build_applied(build, adb, tiny, model_dir, tmp_path, capsys):
    phone = adb.add_phone(SERIAL)
    binary = build_binary(tmp_path, build)
    net, out = tmp_path / "tiny.json", tmp_path / "sweep.csv"
    net.write_text(tiny.to_json())
    assert main(["sweep", "--device", "pixel2", "--network", str(net), "--resolutions", "48,64",
                 "-O", f"adb_port={adb.port}", "-O", f"binary={binary}",
                 "-O", f"model_dir={model_dir}", "-O", "cooldown_s=0", "--min-rounds", "2",
                 "--max-rounds", "2", "--runs-per-visit", "2", "--out", str(out),
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    df = pd.read_csv(out)
    extra = [json.loads(e) for e in df["extra"]]
    assert (df["n_samples"] == 4).all() and not df["summary_only"].any()   # count=1 lines
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    if build == "tf1":   # the Pixel 2 era: --use_xnnpack and the min_secs flags did nothing
        assert all(e["delegate"] == "none" and e["delegate_asked"] == "xnnpack" for e in extra)
        assert extra[0]["flags_ignored"] == "--warmup_min_secs=0 --min_secs=0 --use_xnnpack=true"
        assert (df["delegate_applied"] == "none").all()
        assert warnings == ["warning: benchmark_model ignored --warmup_min_secs=0 --min_secs=0 "
                            "--use_xnnpack=true and ran with delegate none where xnnpack was "
                            "asked (an older build?); recorded as delegate=none"]
    else:
        assert all(e["delegate"] == "xnnpack" and "delegate_asked" not in e
                   and "flags_ignored" not in e for e in extra)
        assert (df["delegate_applied"] == "xnnpack").all() and warnings == []
    # the probe model ran once, on its own (not a visit): 4 visits and the throttle baseline
    from latency_lab.devices.android import PROBE

    assert sum(PROBE.fingerprint in c for c in phone.commands if "--graph=" in c) == 1
    assert phone.visits == 4 + 1


def test_tf1_failures_are_read_from_the_output_not_the_exit_status(adb, tiny, model_dir, tmp_path,
                                                                   monkeypatch):
    adb.add_phone(SERIAL)
    binary = build_binary(tmp_path, "tf1")
    with get_device("pixel2", adb_port=adb.port, binary=str(binary), model_dir=model_dir,
                    throttle_check=False) as dev:
        dev.prepare(tiny, [64])
        real = type(dev).command
        monkeypatch.setattr(dev, "command", lambda *a, **k: [
            x for x in real(dev, *a, **k) if not x.startswith("--graph=")])
        with pytest.raises(DeviceError, match=r"benchmark_model failed at 64 \(exit status 0\): "
                                              r".*Please specify the name of your TF Lite input"):
            dev.sample(tiny, 64, runs=2)
    # an input named otherwise aborts TF 1.x: said before any work, at the probe
    monkeypatch.setattr("latency_lab.devices.android.INPUT_LAYER", "input_1")
    with get_device("pixel2", adb_port=adb.port, binary=str(binary), model_dir=model_dir) as dev:
        with pytest.raises(DeviceError, match=r"cannot run a probe model on .*refused the model's "
                                              r"input name \(--input_layer=input_1\): .*is named "
                                              r"image but flags call it input_1"):
            dev.info()
    # the current build only warns, and measures
    with get_device("pixel2", adb_port=adb.port, binary=str(build_binary(tmp_path, "current")),
                    model_dir=model_dir, throttle_check=False) as dev:
        assert dev.info().extra["delegate"] == "xnnpack"
        assert len(dev.sample(tiny, 64, runs=2).samples_ms) == 2
