"""Drivers are found by name through entry points, so other packages can add devices."""

import sys
import textwrap

import pytest

from latency_lab.measure.api import DeviceError, device_class, device_names, get_device


def test_builtin_cpu_driver_is_found():
    from latency_lab.devices.cpu import CpuDevice

    assert device_class("cpu") is CpuDevice
    assert "cpu" in device_names()


def test_third_party_driver_through_an_entry_point(tmp_path, monkeypatch):
    pkg = tmp_path / "acme_dev"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from latency_lab.measure.api import Device, DeviceInfo, RunResult
        class Acme(Device):
            name = "acme"
            def __init__(self, threads=1):
                self.threads = threads
            def info(self):
                return DeviceInfo("acme", "acme board", "acme-rt", "0.1", threads=self.threads)
            def sample(self, spec, resolution, runs, warmup_runs=1):
                return RunResult((1.0,) * runs)
    """))
    dist = tmp_path / "acme_dev-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-dev\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[latency_lab.devices]\nacme = acme_dev:Acme\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme" in device_names()
    dev = get_device("acme", threads=3)
    assert dev.info().threads == 3 and dev.info().context_key.startswith("acme-")


def test_module_colon_class_is_accepted():
    assert device_class("latency_lab.devices.cpu:CpuDevice").name == "cpu"


def test_unknown_driver_and_bad_options_are_clear_errors():
    with pytest.raises(DeviceError, match="unknown device 'gpu9'; known: .*cpu"):
        get_device("gpu9")
    with pytest.raises(DeviceError, match="device 'cpu' has no option 'warp_speed'; its "
                                          "options: affinity, builder, model_dir, threads, xnnpack$"):
        get_device("cpu", warp_speed=9)
    with pytest.raises(DeviceError, match="cannot load device driver"):
        device_class("no_such_module:Thing")
    # a class (or anything) that is not a latency_lab Device is refused, not instantiated
    for target in ("json:JSONDecoder", "json:dumps"):
        with pytest.raises(DeviceError, match=f"'{target}' is not a device driver"):
            get_device(target)


def test_text_options_are_converted_from_the_driver_signature():
    """`-O KEY=VALUE` text becomes what the driver's annotations say, in one place."""
    dev = get_device("cpu", threads="2", xnnpack="off", model_dir="none")
    assert dev.threads == 2 and dev.xnnpack is False and dev.model_dir is None
    assert get_device("cpu", xnnpack="Yes").xnnpack is True
    for key, value, expected in [("threads", "two", "an integer"),
                                 ("threads", "1.5", "an integer"),
                                 ("xnnpack", "maybe", "true or false")]:
        with pytest.raises(DeviceError, match=f"device 'cpu' option {key}='{value}': expected "
                                              f"{expected}$"):
            get_device("cpu", **{key: value})


@pytest.mark.slow
def test_option_conversion_covers_every_shipped_driver_without_loading_others():
    """Drivers declare typed options; converting the cuda driver's loads no Android driver
    (and so no Keras builder), and a hook like the Android driver's `sleep` is not text."""
    import subprocess

    code = ("import sys\n"
            "from latency_lab.measure.api import device_class, driver_options\n"
            "cls = device_class('cuda')\n"
            "print(driver_options(cls, {'cuda_graphs': 'on', 'batch_size': '8', "
            "'shape_warmup': '0', 'precision': 'fp16'}))\n"
            "print(sorted(m for m in sys.modules if m.startswith('latency_lab.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert eval(out[0]) == {"cuda_graphs": True, "batch_size": 8, "shape_warmup": 0,
                            "precision": "fp16"}
    loaded = eval(out[1])
    assert "latency_lab.devices.android" not in loaded and "latency_lab.models.build_keras" not in loaded

    from latency_lab.measure.api import driver_options

    android = device_class("android")
    got = driver_options(android, {"adb_port": "5038", "probe_resolution": "none",
                                   "cooldown_s": "2.5", "per_run": "false", "serial": "abc"})
    assert got == {"adb_port": 5038, "probe_resolution": None, "cooldown_s": 2.5,
                   "per_run": False, "serial": "abc"}
    with pytest.raises(DeviceError, match="adb_port='x': expected an integer or none$"):
        driver_options(android, {"adb_port": "x"}, "pixel2")
    with pytest.raises(DeviceError, match="no option 'nope'; its options: .*cooldown_s") as err:
        driver_options(android, {"nope": "1"}, "pixel2")
    assert "sleep" not in str(err.value)
    with pytest.raises(DeviceError, match="sleep='1': expected a "):
        driver_options(android, {"sleep": "1"}, "pixel2")
    jetson = device_class("jetson")
    assert driver_options(jetson, {"onnx_check": "0"}) == {"onnx_check": False}


def test_cpu_affinity_is_applied_and_recorded():
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("CPU pinning is Linux-only")
    before = os.sched_getaffinity(0)
    try:
        cpu = min(before)
        dev = get_device("cpu", affinity=str(cpu))
        assert os.sched_getaffinity(0) == {cpu} and dev.info().affinity == str(cpu)
        with pytest.raises(DeviceError, match="malformed CPU set"):
            get_device("cpu", affinity="zero")
    finally:
        os.sched_setaffinity(0, before)


def test_one_installed_namespace(tmp_path):
    """The repository's devices/ and search/ install as latency_lab.devices and
    latency_lab.search; outside the checkout a bare `import devices` or `import search` finds
    nothing of ours, and the shipped drivers are one list (latency_lab.devices.DRIVERS)."""
    import subprocess

    code = ("import importlib.util as u, latency_lab.devices as d, latency_lab.search\n"
            "print(u.find_spec('devices'), u.find_spec('search'), u.find_spec('android_bench'))\n"
            "print(sorted(d.DRIVERS))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == "None None None"
    assert set(eval(out[1])) <= set(device_names())
    for name in eval(out[1]):
        assert device_class(name).__module__.startswith("latency_lab.devices.")
