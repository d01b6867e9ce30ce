"""The pixel2/android driver end to end against a loopback ADB server (tests/fake_adb.py).

adbutils talks the real ADB protocol over a real socket to the fake server, whose "phone" runs
the driver's shell commands on the host in a sandbox, with tests/host_benchmark_model.py as the
benchmark binary (real LiteRT timings, the binary's output format).
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from fake_adb import FakeAdbServer
from latency_lab.cli.app import main
from latency_lab.measure.api import DeviceError, get_device
from latency_lab.measure.protocol import Protocol
from latency_lab.measure.store import Store
from latency_lab.sweeps.run import run_sweep

SERIAL = "FA79Y1A04111"
HOST_BINARY = Path(__file__).with_name("host_benchmark_model.py")


@pytest.fixture
def adb(tmp_path, monkeypatch):
    # never let adbutils start a real adb daemon if something goes wrong
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("LATENCY_LAB_BENCHMARK_BINARY", raising=False)
    with FakeAdbServer(tmp_path / "adb") as server:
        yield server


@pytest.fixture
def binary(tmp_path) -> Path:
    """The host benchmark program, as a file the phone can execute (shebang = this Python)."""
    path = tmp_path / "benchmark_model"
    path.write_text(f"#!{sys.executable}\n" + HOST_BINARY.read_text())
    return path


@pytest.fixture
def silent_server():
    """A real TCP server on loopback that accepts every connection and never answers."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    conns, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1], conns
    stop.set()
    thread.join(2)
    for c in conns:
        c.close()
    srv.close()


def pixel2(adb, binary, model_dir, **kw):
    kw.setdefault("cooldown_s", 0)
    return get_device("pixel2", adb_port=adb.port, binary=str(binary), model_dir=model_dir, **kw)


# -- finding the phone ---------------------------------------------------------------------------

def test_no_server_no_device_unauthorized_several(adb, binary, tmp_path):
    with pytest.raises(DeviceError, match="no Android device attached"):
        pixel2(adb, binary, None)
    adb.add_phone("0123456789", state="unauthorized")
    with pytest.raises(DeviceError, match="unauthorized.*Allow USB debugging"):
        pixel2(adb, binary, None)
    adb.add_phone(SERIAL)
    adb.add_phone("emulator-5554")
    with pytest.raises(DeviceError, match="several devices.*--serial"):
        pixel2(adb, binary, None)
    with pytest.raises(DeviceError, match="no device 'nope'"):
        pixel2(adb, binary, None, serial="nope")
    dev = pixel2(adb, binary, None, serial=SERIAL)
    assert dev.serial == SERIAL and dev._props["ro.product.model"] == "Pixel 2"
    dev.close()
    # a port nobody listens on: a clear error, and no adb daemon spawned
    with pytest.raises(DeviceError, match="no ADB server at 127.0.0.1"):
        get_device("pixel2", adb_port=1, binary=str(binary))


def test_a_server_that_never_answers_fails_within_the_connect_timeout(silent_server, binary):
    port, conns = silent_server
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"127.0.0.1:\d+ accepted the connection but did not "
                                          r"answer the device list within 0.3 s"):
        get_device("android", adb_port=port, binary=str(binary), connect_timeout_s=0.3)
    assert time.monotonic() - t0 < 3 and conns  # it did connect, and gave up on its own


@pytest.mark.slow
def test_cli_against_a_silent_server_is_one_line_within_the_default_timeout(silent_server, binary,
                                                                           capsys):
    """The defaults, end to end: `--device android` gives up after the 5 s connect timeout,
    not the 900 s visit timeout."""
    t0 = time.monotonic()
    code = main(["sweep", "--device", "android", "--resolutions", "64",
                 "-O", f"adb_port={silent_server[0]}", "-O", f"binary={binary}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "did not answer the device list within 5 s" in err
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_a_device_that_takes_requests_and_never_answers(adb, binary):
    phone = adb.add_phone(SERIAL, stall=True)   # features answered by the server, shell never
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=f"device {SERIAL} did not answer within 0.5 s while "
                                          f"reading device properties"):
        pixel2(adb, binary, None, request_timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    phone.stall = False
    pixel2(adb, binary, None, request_timeout_s=0.5).close()


def test_a_reply_with_a_bad_length_is_one_line(adb, binary, capsys):
    """adbutils reads a reply's length with int(length, 16): a length that is not hex was a
    ValueError traceback (issue 25). The server's device list, then a device's features."""
    srv = socket.create_server(("127.0.0.1", 0))

    def answer():     # the transport's probe connects first, then adbutils asks the list
        while True:
            try:
                conn = srv.accept()[0]
            except OSError:
                return
            if conn.recv(4096):
                conn.sendall(b"OKAYzzzz")      # OKAY, then a length that is not 4 hex digits
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    code = main(["sweep", "--device", "android", "--resolutions", "64",
                 "-O", f"adb_port={srv.getsockname()[1]}", "-O", f"binary={binary}"])
    srv.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.fullmatch(r"error: 127.0.0.1:\d+ sent the device list outside the ADB protocol "
                        r"\(invalid literal for int\(\) with base 16: 'zzzz'\): is it an ADB "
                        r"server\?\n", err), err
    adb.add_phone(SERIAL, garbled=True)
    with pytest.raises(DeviceError, match=f"device {SERIAL} sent its features outside the ADB "
                                          f"protocol"):
        pixel2(adb, binary, None)


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_bad_adb_port_in_the_environment_is_one_line(monkeypatch, binary, capsys, value):
    """adbutils reads ANDROID_ADB_SERVER_PORT with int() when it is imported: checked first."""
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", value)
    code = main(["sweep", "--device", "android", "--resolutions", "64", "-O", f"binary={binary}"])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: ANDROID_ADB_SERVER_PORT='{value}' is not a port number "
                                 f"(1-65535): unset it or set it to the ADB server's port (adb's "
                                 f"default 5037)\n")
    with pytest.raises(DeviceError, match="adb_port=99999 is not a port number"):
        monkeypatch.delenv("ANDROID_ADB_SERVER_PORT")
        get_device("android", adb_port=99999, binary=str(binary))


@pytest.mark.slow
def test_the_chosen_phone_describes_itself_with_what_the_binary_applied(adb, binary, model_dir):
    adb.add_phone(SERIAL)
    with pixel2(adb, binary, model_dir) as dev:
        info = dev.info()
    assert info.hardware == "Pixel 2 (msm8998)" and info.affinity == "mask f0"
    assert info.extra["delegate"] == "xnnpack" and "flags_ignored" not in info.extra
    assert info.runtime_version.startswith("benchmark_model sha256:")


@pytest.mark.slow
def test_missing_binary_is_a_clear_error(adb, tmp_path):
    adb.add_phone(SERIAL)
    with pytest.raises(DeviceError, match="does not exist.*android_bench/README.md"):
        get_device("pixel2", adb_port=adb.port, binary=str(tmp_path / "nope"))
    with pytest.raises(DeviceError, match="no benchmark binary given"):
        get_device("pixel2", adb_port=adb.port)


def test_cli_errors_are_one_line(adb, binary, capsys):
    code = main(["sweep", "--device", "pixel2", "--resolutions", "64", "-O", f"adb_port={adb.port}",
                 "-O", f"binary={binary}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: no Android device attached") and err.count("\n") == 1
    assert main(["sweep", "--device", "pixel2", "-O", "adb_port"]) == 2
    assert "malformed --device-option" in capsys.readouterr().err


# -- measuring -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sweep_command_on_the_fake_pixel2(adb, binary, tiny, model_dir, tmp_path):
    phone = adb.add_phone(SERIAL)
    adb.add_phone("emulator-5554")  # a second device: --serial picks the phone
    net, out = tmp_path / "tiny.json", tmp_path / "sweep.csv"
    net.write_text(tiny.to_json())
    args = ["sweep", "--device", "pixel2", "--network", str(net), "--resolutions", "64,96",
            "--serial", SERIAL, "-O", f"adb_port={adb.port}", "-O", f"binary={binary}",
            "-O", f"model_dir={model_dir}", "-O", "cooldown_s=0", "--min-rounds", "2",
            "--max-rounds", "2", "--runs-per-visit", "2", "--out", str(out),
            "--store", str(tmp_path / "s.sqlite")]
    assert main(args) == 0
    df = pd.read_csv(out)
    assert list(df["resolution"]) == [64, 96]
    assert (df["device"] == "pixel2").all() and (df["hardware"] == "Pixel 2 (msm8998)").all()
    assert (df["affinity"] == "mask f0").all() and (df["threads"] == 1).all()
    assert (df["n_samples"] == 4).all() and not df["summary_only"].any()
    assert (df["throttle_events"] == 0).all() and (df["latency_ms"] > 0).all()
    assert df["runtime_version"].str.startswith("benchmark_model sha256:").all()
    # what ran on the phone: pinned to the big cores, one thread, resized per resolution
    visits = [c for c in phone.commands if " -- taskset f0 " in c]
    assert visits and all("--num_threads=1" in c for c in visits)
    assert any("--input_layer_shape=1,96,96,3" in c for c in visits)
    # the model was removed afterwards; the binary stays, named by its hash
    work = phone.tmp / "latency_lab"
    assert not list((work / "models").iterdir())
    assert [p.name for p in (work / "bin").iterdir()] == [
        f"benchmark_model-{__import__('hashlib').sha256(binary.read_bytes()).hexdigest()[:16]}"]
    # measured twice? no: a second run replays the store without touching the phone
    n = len(phone.commands)
    assert main(args) == 0
    assert not any("run_bench" in c and "--graph=" in c for c in phone.commands[n:])


@pytest.mark.slow
def test_facts_summary_mode_and_injection_safe_paths(adb, binary, tiny, model_dir, tmp_path):
    phone = adb.add_phone(SERIAL)
    evil = "/data/local/tmp/ll dir;touch pwned;"
    with pixel2(adb, binary, model_dir, remote_dir=evil, per_run=False) as dev:
        dev.prepare(tiny, [64])
        run = dev.sample(tiny, 64, runs=5, warmup_runs=1)
        assert run.summary_only and len(run.samples_ms) == 1 and run.samples_ms[0] > 0
        assert run.facts["thermal_status"] == 0
        assert run.facts["cpu4_scaling_governor"] == "schedutil"
        assert run.facts["cpu7_scaling_cur_freq"] == 2457600
        assert run.facts["delegate_applied"] == "xnnpack"
        models = phone.tmp / "ll dir;touch pwned;" / "models"
        assert len(list(models.iterdir())) == 2   # the network's and the probe's
    assert not list(models.iterdir())
    assert not list(phone.root.rglob("pwned")) and not Path("pwned").exists()
    # every command that takes paths ends its options first: a path is never read as one
    for c in phone.commands:
        if c.split()[0] in ("mkdir", "chmod", "rm", "cat", "sh"):
            assert " -- " in c, c


def test_a_remote_dir_that_could_read_as_an_option_is_refused(adb, binary, model_dir):
    adb.add_phone(SERIAL)
    for bad in ("-rf", "data/local/tmp/x"):
        with pytest.raises(DeviceError, match="remote_dir must be an absolute path"):
            pixel2(adb, binary, model_dir, remote_dir=bad)


@pytest.mark.slow
def test_crash_is_reported(adb, binary, tiny, model_dir):
    phone = adb.add_phone(SERIAL)
    with pixel2(adb, binary, model_dir, throttle_check=False) as dev:
        (phone.root / "crash").write_text("")
        with pytest.raises(DeviceError, match=r"benchmark_model crashed \(SIGABRT\).*Check failed"):
            dev.sample(tiny, 64, runs=2, warmup_runs=1)


@pytest.mark.slow
def test_throttling_cools_down_and_remeasures(adb, binary, tiny, model_dir):
    phone = adb.add_phone(SERIAL)
    status = phone.root / "thermal_status"
    waits = []

    def sleep(seconds):  # the phone cools while we wait
        waits.append(seconds)
        status.write_text("0\n")

    with pixel2(adb, binary, model_dir, sleep=sleep, cooldown_s=5, probe_every=0) as dev:
        dev.prepare(tiny, [64])
        status.write_text("2\n")  # moderate throttling during the visit
        run = dev.sample(tiny, 64, runs=2, warmup_runs=1)
        assert waits == [5]
        assert run.facts["throttle_events"] == 1 and run.facts["remeasured"]
        assert run.facts["throttle_reason"] == "thermal_status=2" and run.facts["throttle_cleared"]
        assert run.facts["thermal_status"] == 0 and len(run.samples_ms) == 2
    # the probe: slower than its baseline by > 10% counts too; never clears -> recorded so
    with pixel2(adb, binary, model_dir, sleep=lambda s: None, cooldown_s=1, max_cooldown_s=2,
                probe_every=1) as dev:
        dev.prepare(tiny, [64])
        dev._baseline_us[tiny.fingerprint] = 0.001  # a baseline no real run can meet
        run = dev.sample(tiny, 64, runs=2, warmup_runs=1)
        assert run.facts["throttle_reason"].startswith("probe ")
        assert run.facts["throttle_cleared"] is False and run.facts["cooldown_s"] == 2


@pytest.mark.slow
def test_unplugged_mid_sweep_keeps_samples_and_resumes(adb, binary, tiny, model_dir, tmp_path):
    phone = adb.add_phone(SERIAL, unplug_after_visits=3)
    store = Store(tmp_path / "s.sqlite")
    protocol = Protocol(runs_per_visit=2, min_rounds=2, max_rounds=2)
    dev = pixel2(adb, binary, model_dir, throttle_check=False)
    with pytest.raises(DeviceError, match="lost device .*run again to resume"):
        run_sweep(dev, tiny, [64, 96], store, protocol)
    kept = sum(len(store.samples(m)[0]) for m in range(1, 3))
    assert kept == 3 * 2  # three visits were stored before the cable went
    phone.unplug_after_visits = None  # plugged back in
    before = phone.visits
    with pixel2(adb, binary, model_dir, throttle_check=False) as dev:
        frame = run_sweep(dev, tiny, [64, 96], store, protocol)
    assert list(frame["n_samples"]) == [4, 4]
    assert phone.visits - before == 1  # only the missing visit was taken
