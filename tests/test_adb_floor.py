"""The oldest adbutils the android driver allows (pyproject: adbutils>=2.8.10), installed for real.

`AdbDevice.shell2(..., v2=True)` is new in adbutils 2.8.10 (adbutils/_device.py at tag 2.8.10;
2.8.9 has no `v2` keyword). Each version is installed with pip into a cache folder
(`pip install --no-deps --target`, once per machine: adbutils' own dependencies are those of
the newer adbutils in this environment) and put first on PYTHONPATH of a `latency-lab` process:
with 2.8.10 a whole sweep runs against the loopback ADB server (tests/fake_adb.py), with 2.8.9
the driver refuses in one line before any work. Skipped, with the reason, where pip cannot
reach a package index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_adb import FakeAdbServer
from latency_lab.devices.adb_transport import MIN_ADBUTILS

SERIAL = "FA79Y1A04111"
HOST_BINARY = Path(__file__).with_name("host_benchmark_model.py")
BELOW_FLOOR = "2.8.9"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def adbutils_at(request, tmp_path_factory):
    """adbutils==VERSION installed into its own folder (kept in pytest's cache between runs)."""
    installed: dict[str, Path] = {}

    def install(version: str) -> Path:
        if version in installed:      # one folder per version (mktemp numbers each call)
            return installed[version]
        cache = getattr(request.config, "cache", None)
        target = Path(cache.mkdir(f"adbutils-{version}") if cache is not None
                      else tmp_path_factory.mktemp(f"adbutils-{version}"))
        done = target / ".installed"
        if not done.exists():
            r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                "--disable-pip-version-check", "--upgrade", "--target",
                                str(target), f"adbutils=={version}"],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.skip(f"cannot install adbutils=={version} here (no package index?): {last}")
            done.write_text(version)
        installed[version] = target
        return target
    return install


def _latency_lab(args: list[str], adbutils_dir: Path, env: dict) -> subprocess.CompletedProcess:
    """`latency-lab ARGS` in a fresh process whose adbutils is the one in `adbutils_dir`;
    it prints which adbutils it ran with on its last stdout line."""
    code = ("import sys, json, adbutils; from latency_lab.cli.app import main; rc = main(sys.argv[1:]); "
            "print(json.dumps({'adbutils': adbutils.__version__, 'file': adbutils.__file__})); "
            "sys.exit(rc)")
    env = dict(env, PYTHONPATH=os.pathsep.join([str(adbutils_dir), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def adb(tmp_path, monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")   # never start a real adb daemon
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    with FakeAdbServer(tmp_path / "adb") as server:
        yield server


def test_the_floor_runs_a_sweep_end_to_end(adbutils_at, adb, tiny, model_dir, tmp_path):
    phone = adb.add_phone(SERIAL)
    binary = tmp_path / "benchmark_model"
    binary.write_text(f"#!{sys.executable}\n" + HOST_BINARY.read_text())
    net, out = tmp_path / "tiny.json", tmp_path / "sweep.csv"
    net.write_text(tiny.to_json())
    r = _latency_lab(["sweep", "--device", "pixel2", "--network", str(net), "--resolutions", "64",
                      "-O", f"adb_port={adb.port}", "-O", f"binary={binary}",
                      "-O", f"model_dir={model_dir}", "-O", "cooldown_s=0", "--min-rounds", "2",
                      "--max-rounds", "2", "--runs-per-visit", "2", "--out", str(out),
                      "--store", str(tmp_path / "s.sqlite")],
                     adbutils_at(MIN_ADBUTILS), dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    used = json.loads(r.stdout.strip().splitlines()[-1])
    assert used["adbutils"] == MIN_ADBUTILS and str(adbutils_at(MIN_ADBUTILS)) in used["file"]
    assert out.read_text().count("\n") == 2 and ",pixel2," in out.read_text()
    # the exit status of each command came back over shell v2: the binary check is `test -x`
    assert any(c.startswith("test -x ") for c in phone.commands)
    assert sum("--graph=" in c for c in phone.commands) >= 2


def test_below_the_floor_is_refused_in_one_line(adbutils_at, adb, tmp_path):
    adb.add_phone(SERIAL)
    binary = tmp_path / "benchmark_model"
    binary.write_text("#!/bin/sh\n")
    r = _latency_lab(["sweep", "--device", "android", "--resolutions", "64",
                      "-O", f"adb_port={adb.port}", "-O", f"binary={binary}"],
                     adbutils_at(BELOW_FLOOR), dict(os.environ))
    assert r.returncode == 2
    assert json.loads(r.stdout.strip().splitlines()[-1])["adbutils"] == BELOW_FLOOR
    assert r.stderr == (f"error: adbutils {BELOW_FLOOR} is too old for the android and pixel2 "
                        f"devices: they read each command's exit status with shell2(v2=True), "
                        f"new in adbutils {MIN_ADBUTILS}: pip install 'adbutils>={MIN_ADBUTILS}'\n")
