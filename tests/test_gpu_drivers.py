"""cuda and jetson drivers: everything up to the GPU runs here; the GPU parts skip with a reason.

CI has no GPU: the ONNX export and its onnxruntime check, engine cache keys, version refusal,
and the parsing of nvidia-smi / nvpmodel / jetson_clocks output are tested for real; timing on
a GPU is validated by benchmarks/cuda_sweep.py on a GPU machine (see docs/validation.md).
"""

from __future__ import annotations

import importlib.util

import pytest

from latency_lab.devices.cuda import cudnn_benchmark_flag, parse_nvidia_smi
from latency_lab.models.build_onnx import export_onnx
from latency_lab.devices.tensorrt import (check_onnx, check_trt_version, engine_key,
                              parse_jetson_clocks, parse_nvpmodel)
from latency_lab.measure.api import DeviceError, get_device

torch = pytest.importorskip("torch")
HAS_CUDA = torch.cuda.is_available()
NO_GPU = "no CUDA GPU on this machine (CI); validated by benchmarks/cuda_sweep.py on a GPU box"


def test_cuda_refuses_clearly_without_a_gpu():
    with pytest.raises(DeviceError, match="precision must be one of fp32, fp16"):
        get_device("cuda", precision="int4")
    if HAS_CUDA:
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="CUDA is not available: torch .*(CPU-only build|sees no GPU)"):
        get_device("cuda")


def test_cudnn_benchmark_is_set_only_while_the_driver_runs():
    """The flag is process-wide: the driver sets it around its own forwards and restores
    what the process had, also when a forward fails."""
    before = torch.backends.cudnn.benchmark
    try:
        for outer in (False, True):
            torch.backends.cudnn.benchmark = outer
            with cudnn_benchmark_flag(torch, not outer):
                assert torch.backends.cudnn.benchmark is (not outer)
            assert torch.backends.cudnn.benchmark is outer
            with pytest.raises(RuntimeError), cudnn_benchmark_flag(torch, not outer):
                raise RuntimeError("a forward failed")
            assert torch.backends.cudnn.benchmark is outer
    finally:
        torch.backends.cudnn.benchmark = before


def test_nvidia_smi_csv_parsing():
    out = ("NVIDIA GeForce RTX 3090, 535.129.03, 1695, 9751, 2100, 41, 112.45, P2\n"
           "Orin (nvgpu), [N/A], 1300, [Not Supported], 1300, 38, [N/A], P0\n")
    a, b = parse_nvidia_smi(out)
    assert a["name"] == "NVIDIA GeForce RTX 3090" and a["driver_version"] == "535.129.03"
    assert a["clocks.sm"] == 1695 and a["power.draw"] == 112.45 and a["pstate"] == "P2"
    assert b["driver_version"] is None and b["clocks.mem"] is None and b["clocks.sm"] == 1300
    assert parse_nvidia_smi("garbage line\n") == []


@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
def test_cuda_samples_fp16_channels_last_with_graphs(tiny):
    with get_device("cuda", precision="fp16", cuda_graphs="true") as dev:
        info = dev.info()
        assert info.precision == "fp16" and info.extra["cuda_graphs"]
        before = torch.backends.cudnn.benchmark
        run = dev.sample(tiny, 64, runs=5, warmup_runs=2)   # sets the shape up on first use
        assert len(run.samples_ms) == 5 and all(s > 0 for s in run.samples_ms)
        assert run.facts["execution"] == "graph" and run.facts["launch_bound"] is False
        assert torch.backends.cudnn.benchmark == before  # not left changed for the process


@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
def test_cuda_setup_captures_a_graph_and_checks_launch_cost(tiny):
    """A tiny network at batch 1 is all launch cost: a few microseconds of GPU work per
    kernel against tens of microseconds of Python per op."""
    with get_device("cuda", shape_warmup="2") as dev:
        f = dev.setup(tiny, 64)
        assert f["execution"] == "graph" and 0 < f["graph_ms"] < f["eager_ms"]
        assert f["eager_over_graph"] >= 1.25 and f["eager_launch_bound"] is True
        assert f["launch_bound"] is False       # what is recorded is the graph's GPU time
        # a larger resolution grows the shared input buffer; the old shape is set up again
        dev.setup(tiny, 128)
        assert len(dev.sample(tiny, 64, runs=3).samples_ms) == 3
    with get_device("cuda", cuda_graphs="false", shape_warmup="1") as dev:
        f = dev.setup(tiny, 64)
        assert f["execution"] == "eager" and "graph_ms" not in f
        assert f["launch_bound"] is f["eager_launch_bound"]


@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
def test_cuda_sweep_of_efficientnet_reports_setup_and_execution(tmp_path):
    from latency_lab.network import presets
    from latency_lab.measure.protocol import Protocol
    from latency_lab.measure.store import Store
    from latency_lab.sweeps.run import run_sweep

    b0 = presets.get("efficientnet-b0")
    with get_device("cuda", precision="fp16", batch_size="8", shape_warmup="2") as dev, \
            Store(tmp_path / "s.sqlite") as store:
        frame = run_sweep(dev, b0, [192, 224, 256], store,
                          Protocol(runs_per_visit=4, min_rounds=2, max_rounds=2, time_cap_s=60))
    assert list(frame["n_samples"]) == [8, 8, 8] and (frame["setup_s"] > 0).all()
    assert set(frame["execution"]) == {"graph"} and (frame["latency_ms"] > 0).all()
    assert (frame["ci_high_ms"] >= frame["ci_low_ms"]).all()


def test_tensorrt_version_gate():
    assert check_trt_version("8.5.2.2") == (8, 5, 2)
    assert check_trt_version("10.3.0") == (10, 3, 0)
    with pytest.raises(DeviceError, match="TensorRT 11 removed the FP16 builder flag"):
        check_trt_version("11.0.0")
    with pytest.raises(DeviceError, match="too old.*8.5"):
        check_trt_version("8.4.3")


def test_engine_cache_keys_separate_what_changes_an_engine(tiny):
    base = engine_key(tiny.fingerprint, 224, "10.3.0", "fp16", 1, "Orin")
    assert base.startswith(f"{tiny.fingerprint}-r224-b1-fp16-trt10.3.0-")
    others = {engine_key(tiny.fingerprint, 228, "10.3.0", "fp16", 1, "Orin"),
              engine_key(tiny.fingerprint, 224, "8.5.2", "fp16", 1, "Orin"),
              engine_key(tiny.fingerprint, 224, "10.3.0", "fp32", 1, "Orin"),
              engine_key(tiny.fingerprint, 224, "10.3.0", "fp16", 8, "Orin"),
              engine_key(tiny.fingerprint, 224, "10.3.0", "fp16", 1, "RTX 3090"),
              engine_key("0" * 16, 224, "10.3.0", "fp16", 1, "Orin")}
    assert base not in others and len(others) == 6
    assert base == engine_key(tiny.fingerprint, 224, "10.3.0", "fp16", 1, "Orin")


# `jetson_clocks --show` as NVIDIA's script prints it (/usr/bin/jetson_clocks, Copyright
# 2015-2023, L4T R35: main(), do_hotplug, do_cpu, do_igpu, do_emc, do_dla, do_pva, do_fan,
# do_nvpmodel), on an AGX Orin (tegra234) in MAXN, before `sudo jetson_clocks` (the script ends
# the IdleStates list with a space, left out here):
ORIN_DYNAMIC = """\
SOC family:tegra234  Machine:Jetson AGX Orin
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=1190400 IdleStates: WFI=1 c7=1
cpu1: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1
GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA0_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
PVA0_VPS0: Online=1 MinFreq=0 MaxFreq=1152000000 CurrentFreq=1152000000
PVA0_AXI:  Online=1 MinFreq=0 MaxFreq=832000000 CurrentFreq=832000000
FAN Dynamic Speed control=active hwmon2_pwm1=55
NV Power Mode: MAXN
"""
# ... and after it: do_cpu copies MaxFreq into MinFreq and disables the idle states, do_igpu
# copies the GPU's max into its min, do_emc sets FreqOverride=1 and the rate to the maximum but
# leaves EMC MinFreq alone; DLA/PVA lines are only shown (MinFreq=0 stays).
ORIN_PINNED = (ORIN_DYNAMIC
               .replace("MinFreq=729600", "MinFreq=2201600")
               .replace("CurrentFreq=1190400 IdleStates: WFI=1 c7=1", "CurrentFreq=2201600 IdleStates: WFI=0 c7=0")
               .replace("GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000",
                        "GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000")
               .replace("CurrentFreq=2133000000 FreqOverride=0", "CurrentFreq=3199000000 FreqOverride=1"))
# A Nano (tegra210) after `sudo jetson_clocks` (do_emc's tegra210 branch, same line format).
NANO_PINNED = """\
SOC family:tegra210  Machine:NVIDIA Jetson Nano Developer Kit
Online CPUs: 0-3
cpu0: Online=1 Governor=schedutil MinFreq=1479000 MaxFreq=1479000 CurrentFreq=1479000 IdleStates: WFI=0 c7=0
GPU MinFreq=921600000 MaxFreq=921600000 CurrentFreq=921600000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1
Fan: PWM=0
NV Power Mode: MAXN
"""
NOT_ROOT = "SOC family:tegra234  Machine:Jetson AGX Orin\nError: Run this script(/usr/bin/jetson_clocks) as a root user\n"


def test_jetson_tool_output_parsing():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"power_mode": "MAXN", "power_mode_id": 0}
    assert parse_nvpmodel("NV Power Mode: MODE_30W_ALL\n3\n")["power_mode_id"] == 3
    # pinned as jetson_clocks pins: EMC MinFreq stays low, DLA/PVA MinFreq stays 0
    assert parse_jetson_clocks(ORIN_PINNED) == {"clocks_pinned": True, "gpu_cur_hz": 1300500000}
    assert parse_jetson_clocks(NANO_PINNED)["clocks_pinned"] is True
    dynamic = parse_jetson_clocks(ORIN_DYNAMIC)
    assert dynamic["clocks_pinned"] is False and dynamic["gpu_cur_hz"] == 306000000
    assert dynamic["clocks_unpinned"] == ("2 of 2 CPU cores MinFreq < MaxFreq; GPU MinFreq=306000000 "
                                          "< MaxFreq=1300500000; EMC FreqOverride=0")
    # each part on its own: the memory clock not overridden is enough to be unpinned
    only_emc = ORIN_PINNED.replace("FreqOverride=1", "FreqOverride=0")
    assert parse_jetson_clocks(only_emc)["clocks_unpinned"] == "EMC FreqOverride=0"
    dgpu = ORIN_PINNED.replace("GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000",
                               "dGPU DefaultMemFreq=5001MHz MaxMemFreq=7001MHz CurrentMemFreq=5001MHz\n"
                               "dGPU DefaultGraFreq=1410MHz MaxGraFreq=1980MHz CurrentGraFreq=1980MHz")
    assert parse_jetson_clocks(dgpu)["clocks_unpinned"] == "dGPU CurrentMemFreq=5001 < MaxMemFreq=7001"
    # as non-root the script prints one line and stops: said, not read as "not pinned"
    assert parse_jetson_clocks(NOT_ROOT) == {"clocks": "unknown: jetson_clocks --show must run as root"}
    assert parse_jetson_clocks("") == {}


def test_jetson_facts_run_the_tools(tmp_path, monkeypatch, capsys):
    """jetson_facts() runs the tools it finds on PATH and reads what they print, stdout and
    stderr (the root error goes to stdout, as the real script's `echo`)."""
    from latency_lab.devices.tensorrt import jetson_facts

    for name, text, rc in (("jetson_clocks", NOT_ROOT, 1), ("nvpmodel", "NV Power Mode: MAXN\n0\n", 0)):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\nexit {rc}\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert jetson_facts() == {"power_mode": "MAXN", "power_mode_id": 0,
                              "clocks": "unknown: jetson_clocks --show must run as root"}
    assert capsys.readouterr().err == ""
    jetson_facts(say_unknown=True)   # what the driver does once when it opens
    assert capsys.readouterr().err == ("warning: jetson_clocks --show must run as root, so whether "
                                       "the clocks are pinned is not recorded (pin them with `sudo "
                                       "jetson_clocks` first)\n")
    (tmp_path / "jetson_clocks").write_text(f"#!/bin/sh\ncat <<'EOF'\n{ORIN_PINNED}EOF\n")
    assert jetson_facts()["clocks_pinned"] is True


def test_jetson_refuses_clearly_without_tensorrt():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(DeviceError, match="TensorRT is not installed"):
        get_device("jetson")


@pytest.mark.slow
def test_onnx_export_is_dynamic_and_matches_torch(tiny, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = export_onnx(tiny, tmp_path / "tiny.onnx")
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].name == "image"
    assert [d.dim_value or d.dim_param for d in dims] == [1, 3, "height", "width"]
    diffs = check_onnx(tiny, path, resolutions=(64, 96))
    assert set(diffs) == {64, 96} and max(diffs.values()) < 1e-4
    # a graph that is not this torch model (other weights) is caught
    export_onnx(tiny, tmp_path / "other.onnx", seed=1)
    with pytest.raises(DeviceError, match="disagrees with torch"):
        check_onnx(tiny, tmp_path / "other.onnx", resolutions=(64, 96))


@pytest.mark.slow
def test_onnx_export_on_a_torch_without_the_dynamo_keyword(tiny, tmp_path, monkeypatch):
    """Jetson wheels (torch 2.0-2.4) have no `dynamo` keyword: torch.onnx.export there is
    torch/onnx/utils.py's, whose parameters are exactly these (torch 2.1-2.4) and a TypeError
    for any other. Stand one in front of the real exporter: the export still works."""
    onnx = pytest.importorskip("onnx")
    real = torch.onnx.export
    calls = []

    def export(model, args, f, export_params=True, verbose=False, training=None,
               input_names=None, output_names=None, operator_export_type=None,
               opset_version=None, do_constant_folding=True, dynamic_axes=None,
               keep_initializers_as_inputs=None, custom_opsets=None,
               export_modules_as_functions=False, autograd_inlining=True):
        calls.append(opset_version)
        return real(model, args, f, input_names=input_names, output_names=output_names,
                    opset_version=opset_version, dynamic_axes=dynamic_axes, dynamo=False)

    monkeypatch.setattr(torch.onnx, "export", export)
    path = export_onnx(tiny, tmp_path / "old.onnx")
    assert calls == [17] and onnx.load(str(path)).graph.input[0].name == "image"
    with pytest.raises(TypeError, match="dynamo"):   # what the keyword did before
        export(None, (), str(tmp_path / "x.onnx"), dynamo=False)


def test_the_torchscript_exporter_is_asked_for_where_the_keyword_exists():
    from latency_lab.models.build_onnx import torchscript_exporter

    assert torchscript_exporter(torch.onnx.export) == {"dynamo": False}    # torch 2.13 here
    assert torchscript_exporter(lambda model, args, f, opset_version=None: None) == {}
    assert torchscript_exporter(lambda model, args, f, **kwargs: None) == {"dynamo": False}
