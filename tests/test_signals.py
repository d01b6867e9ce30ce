"""SIGTERM and SIGHUP are handled as Ctrl-C is, from the first line of the program's main
(latency_lab.interrupts, cli/entry.py): one line, exit 128 + the signal, the store's leases
given back, local:N workers ended (issue 25)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_lab import interrupts
from latency_lab.cli.app import main

EXE = Path(sys.executable).with_name("latency-lab")
DEVICE = '''
import time
from latency_lab.measure.api import Device, DeviceInfo, RunResult

class Slow(Device):
    name = "slow"

    def info(self):
        return DeviceInfo(name="slow", hardware="formula", runtime="python",
                          runtime_version="1", threads=1)

    def sample(self, spec, resolution, runs, warmup_runs=1):
        time.sleep(0.05)
        return RunResult(tuple(1e-4 * resolution ** 2 for _ in range(runs)))
'''
SLOW_PY = ("import time\ndef lat(net):\n    return 8.0 + sum(s['width'] for s in net['stages'])"
           " / 1e4\ndef acc(net):\n    time.sleep(0.5)\n    return 70.0\n")


@pytest.fixture
def box(tmp_path, tiny):
    (tmp_path / "slowdev.py").write_text(DEVICE)
    (tmp_path / "slow.py").write_text(SLOW_PY)
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    env = dict(os.environ, PYTHONPATH=str(tmp_path), LATENCY_LAB_CACHE=str(tmp_path / "cache"))
    return tmp_path, env


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _leases(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    except sqlite3.Error:
        return 0


def _samples(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.Error:
        return 0


def _stop_when(args, cwd, env, ready, sig=signal.SIGTERM, limit_s: float = 120):
    p = subprocess.Popen([str(EXE), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while not ready(p.pid):
        assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() - t < limit_s, "the command never got to work"
        time.sleep(0.05)
    kids = _children(p.pid)
    p.send_signal(sig)
    err = p.communicate(timeout=120)[1]
    return p.returncode, err.strip().splitlines(), kids


@pytest.mark.slow   # a subprocess measuring for a few seconds
def test_sigterm_in_a_sweep_gives_its_leases_back_and_one_line(box):
    folder, env = box
    store = folder / "s.sqlite"
    args = ["sweep", "--device", "slowdev:Slow", "--network", "tiny.json", "--resolutions",
            "64:256:8", "--out", "o.csv", "--store", str(store), "--no-jumps"]
    # once a sample is in: before it a sweep writes no CSV (test_an_interrupt_before_any_sample)
    rc, lines, _ = _stop_when(args, folder, env, lambda pid: _samples(store) > 0)
    assert rc == 143
    assert lines[-1] == "terminated (SIGTERM): " + interrupts.WHAT
    assert not any("Traceback" in x for x in lines)
    assert _leases(store) == 0
    assert (folder / "o.csv").is_file()           # what was measured reached the CSV


@pytest.mark.slow   # subprocesses measuring for a few seconds
@pytest.mark.parametrize("command", [
    ["lut", "record", "--device", "slowdev:Slow", "--network", "tiny.json", "--resolutions",
     "64:96:8", "--out", "l.json"],
    ["search", "--budget-ms", "5", "--latency", "slowdev:Slow", "--accuracy", "py:slow:acc",
     "--resolutions", "64", "--network", "tiny.json", "--min-rounds", "4", "--out", "so"],
    ["compare", "--budget-ms", "5", "--latency", "slowdev:Slow", "--accuracy", "py:slow:acc",
     "--resolutions", "64", "--network", "tiny.json", "--min-rounds", "4", "--out", "co"]],
    ids=["lut record", "search", "compare"])
def test_sigterm_while_measuring_gives_every_lease_back(box, command):
    """The issue's report: SIGTERM in search, compare and lut record left 15-110 leases for the
    next run to take over (lut record one more: claimed as the signal came)."""
    folder, env = box
    store = folder / "s.sqlite"
    rc, lines, _ = _stop_when(command + ["--store", str(store)], folder, env,
                              lambda pid: _leases(store) > 0)
    assert rc == 143, lines
    assert lines[-1].startswith("terminated (SIGTERM): ") and not any("Traceback" in x
                                                                       for x in lines)
    assert _leases(store) == 0


@pytest.mark.slow   # spawns two worker processes
def test_sigterm_ends_local_workers(box):
    folder, env = box
    args = ["search", "--budget-ms", "9", "--latency", "py:slow:lat", "--accuracy",
            "py:slow:acc", "--out", "so", "--executor", "local:2", "--network", "tiny.json",
            "--resolutions", "64,72"]
    rc, lines, kids = _stop_when(args, folder, env, lambda pid: len(_children(pid)) >= 2)
    assert rc == 143 and lines[-1].startswith("terminated (SIGTERM)")
    assert len(kids) >= 2
    time.sleep(1.0)
    assert [k for k in kids if _alive(k)] == []


def _catches(pid: int, sig: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)


@pytest.mark.slow   # a few subprocesses
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGHUP, 129)])
def test_a_signal_as_soon_as_main_begins_is_one_line(box, sig, code):
    """The first line of the entry point installs the handlers (SigCgt shows it); a signal
    right then, while typer and the commands are still being imported, is its exit code and
    at most one line, never a KeyboardInterrupt traceback."""
    folder, env = box
    p = subprocess.Popen([str(EXE), "network", "show", "tiny.json"], cwd=folder, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while not _catches(p.pid, signal.SIGTERM) and p.poll() is None:
        assert time.monotonic() - t < 30
        time.sleep(0.0005)
    p.send_signal(sig)
    err = p.communicate(timeout=60)[1]
    if p.returncode == 0:
        pytest.skip("the command finished before the signal arrived")
    assert p.returncode == code and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1


def test_handled_signals_raise_an_interrupt_and_the_handlers_come_back():
    before = {s: signal.getsignal(s) for s in interrupts.HANDLED}
    with pytest.raises(KeyboardInterrupt) as info:
        with interrupts.handled():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert isinstance(info.value, interrupts.Interrupt) and info.value.signum == signal.SIGTERM
    assert interrupts.exit_code() == 143
    assert interrupts.message().startswith("terminated (SIGTERM): what was measured")
    assert {s: signal.getsignal(s) for s in interrupts.HANDLED} == before


def test_main_gives_the_handlers_back(capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert main(["network", "list"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    capsys.readouterr()


@pytest.mark.slow   # spawns two worker processes
def test_ctrl_c_in_a_terminal_reaches_workers_as_they_start_and_stays_one_line(box):
    """A terminal's Ctrl-C goes to the whole process group; a local:N worker still importing
    printed a KeyboardInterrupt traceback. Workers are spawned with SIGINT blocked: the
    command alone answers, in one line."""
    folder, env = box
    args = ["search", "--budget-ms", "9", "--latency", "py:slow:lat", "--accuracy",
            "py:slow:acc", "--out", "so", "--executor", "local:2", "--network", "tiny.json",
            "--resolutions", "64,72"]
    p = subprocess.Popen([str(EXE), *args], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    t = time.monotonic()
    while len(_children(p.pid)) < 3:     # its py: worker and the two pool workers, starting
        assert p.poll() is None and time.monotonic() - t < 120
        time.sleep(0.01)
    kids = _children(p.pid)
    os.killpg(p.pid, signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == interrupts.message(signal.SIGINT)
    time.sleep(1.0)
    assert [k for k in kids if _alive(k)] == []


STOP_DEVICE = '''
from latency_lab.measure.api import Device, DeviceInfo

class Stop(Device):
    """Ctrl-C arrives as the first sample is taken."""
    name = "stop"

    def info(self):
        return DeviceInfo(name="stop", hardware="formula", runtime="python",
                          runtime_version="1", threads=1)

    def sample(self, spec, resolution, runs, warmup_runs=1):
        raise KeyboardInterrupt
'''


def test_an_interrupt_before_any_sample_leaves_the_old_csv(tmp_path, tiny, capsys, monkeypatch):
    """A signal 1.6 s into a sweep (the corpus's start-up scenario) came before any sample:
    the CSV of no measurements was a KeyError traceback, and would have replaced the old one."""
    (tmp_path / "stopdev.py").write_text(STOP_DEVICE)
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    (tmp_path / "o.csv").write_text("an old sweep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["sweep", "--device", "stopdev:Stop", "--network", str(tmp_path / "tiny.json"),
                 "--resolutions", "64:96:8", "--out", str(tmp_path / "o.csv"), "--store",
                 str(tmp_path / "s.sqlite"), "--no-jumps"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == interrupts.message(signal.SIGINT)
    assert (tmp_path / "o.csv").read_text() == "an old sweep\n"
    assert _leases(tmp_path / "s.sqlite") == 0


def test_a_signal_while_a_child_is_spawned_is_raised_when_the_spawn_is_done():
    """The mask keeps SIGINT from the spawning thread only; a signal that still reaches the
    handler (SIGTERM, or a Ctrl-C delivered to another thread) was raised between two lines of
    Process.start, and the child read EOF for its start-up data: a traceback (the test above
    failed 1 run in ~10)."""
    done = []
    with pytest.raises(interrupts.Interrupt) as info:
        with interrupts.handled():
            with interrupts.children_deaf():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                done.append("spawned")
    assert done == ["spawned"] and info.value.signum == signal.SIGTERM
