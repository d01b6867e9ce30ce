"""A search whose evaluations run on local:N or a real local Ray: the same files as local,
a worker killed mid-evaluation, the driver killed mid-search, a node lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from latency_lab.network import presets
from latency_lab.cli.app import main
from latency_lab.search.sources import PyLatency
from search_helpers import NONLINEAR, write_module

B0 = presets.get("efficientnet-b0")

# Evaluators with side effects the tests watch: a log of starts and ends, a worker that
# blocks (to be killed) on the first evaluation that claims MARKER.
HOOKS = """
import os
import time

def _key(net):
    from latency_lab.network.spec import NetworkSpec
    return f"{NetworkSpec.from_dict(net).fingerprint}@{net['resolution']}"

def _log(what, net):
    with open(LOG, "a") as f:
        f.write(f"{what} {_key(net)} {os.getpid()}\\n")

def logged(net):
    _log("start", net)
    time.sleep(SLEEP)
    value = accuracy(net)
    _log("done", net)
    return value

def blocks_on_doomed_node(net):
    # on the Ray node whose id is in DOOMED: log, then block until the node is removed;
    # elsewhere take SLEEP, so that a batch's tasks overlap and SPREAD gives both nodes some
    _log("start", net)
    # (a py: function runs in a process of its own, spawned by the Ray worker: the node is
    # told by its raylet's pid, which Ray gives its workers and they their children)
    if os.path.exists(DOOMED) and open(DOOMED).read() == os.environ.get("RAY_RAYLET_PID"):
        _log("doomed", net)
        time.sleep(120)
    time.sleep(SLEEP)
    value = accuracy(net)
    _log("done", net)
    return value

def killed_once(net):
    try:
        fd = os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return accuracy(net)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(120)
"""


@pytest.fixture
def mod(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_module(tmp_path, NONLINEAR + HOOKS, LOG=str(tmp_path / "evals.log"),
                        MARKER=str(tmp_path / "claimed"), SLEEP=0.3,
                        DOOMED=str(tmp_path / "doomed"))


def _args(mod, out, evaluator="accuracy", executor="local"):
    budget = 1.3 * PyLatency(f"{mod}:latency_ms").latency_ms(B0, 224)
    return ["search", "--budget-ms", f"{budget:.3f}", "--latency", f"py:{mod}:latency_ms",
            "--accuracy", f"py:{mod}:{evaluator}", "--resolutions", "224,240",
            "--stages", "3,4,5,6", "--candidates", "4", "--out", out, "--store",
            f"{out}.sqlite", "--executor", executor]


def _files(out) -> tuple[str, dict]:
    from pathlib import Path

    result = json.loads((Path(out) / "result.json").read_text())
    return (Path(out) / "trace.csv").read_text(), result


@pytest.fixture
def reference(mod, tmp_path):
    assert main(_args(mod, "local")) == 0
    return _files("local")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local:2", "ray"])
def test_a_search_on_an_executor_writes_what_local_writes(mod, reference, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    assert main(_args(mod, "other", executor=executor)) == 0
    trace, result = _files("other")
    assert trace == reference[0] and result == reference[1]
    assert result["counts"]["evaluations"] > 10


def _kill_when_claimed(marker, killed: list) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pid = marker.read_text() if marker.exists() else ""
            if pid:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local:2", "ray"])
def test_a_worker_killed_by_pid_mid_evaluation_is_retried_same_result(mod, reference,
                                                                      tmp_path, executor,
                                                                      request):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    killed: list[int] = []
    watcher = _kill_when_claimed(tmp_path / "claimed", killed)
    assert main(_args(mod, "killed", "killed_once", executor)) == 0
    watcher.join()
    assert killed and killed[0] != os.getpid()
    trace, result = _files("killed")
    # the same search; only the evaluator's name differs in the result (its key, and its
    # text wherever the result names it: the networks' provenance)
    assert trace == reference[0]
    assert _renamed(result, f"py:{mod}:killed_once", f"py:{mod}:accuracy") == \
        _renamed(reference[1], "", "")


def _renamed(result: dict, old: str, new: str) -> dict:
    """The result with evaluator text `old` read as `new`, and without the evaluator's key."""
    text = json.dumps({k: v for k, v in result.items() if k != "evaluator_key"})
    return json.loads(text.replace(old, new) if old else text)


def _log_lines(path) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in path.read_text().splitlines()] \
        if path.exists() else []


@pytest.mark.slow
def test_driver_killed_mid_search_resumes_and_resubmits_only_unfinished(mod, reference,
                                                                       tmp_path, ray_cluster):
    """kill -9 of the search process while its evaluations run on Ray (ray:auto, the
    cluster of this session): the rerun decides the same and evaluates again only what had
    not come back (an evaluation in flight at the kill may run twice, nothing finished)."""
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    cmd = [sys.executable, "-m", "latency_lab.cli.app", *_args(mod, "resumed", "logged",
                                                           "ray:auto")]
    log = tmp_path / "evals.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file = tmp_path / "resumed" / "state.json"      # written whole, after each result
    deadline = time.monotonic() + 180
    while proc.poll() is None and (not state_file.exists() or
                                   len(json.loads(state_file.read_text())["values"]) < 4):
        assert time.monotonic() < deadline, "no evaluations came back"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = set(json.loads(state_file.read_text())["values"])
    assert 4 <= len(recorded) < reference[1]["counts"]["evaluations"]
    time.sleep(1.0)     # the killed job's tasks are being stopped by Ray
    lines_before = len(_log_lines(log))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rerun = [k for w, k in _log_lines(log)[lines_before:] if w == "start"]
    assert rerun and not set(rerun) & recorded, "a finished evaluation was submitted again"
    trace, result = _files("resumed")
    assert trace == reference[0]
    assert result["counts"]["resumed"] is True
    assert len(recorded) + result["counts"]["evaluations"] == \
        reference[1]["counts"]["evaluations"]


@pytest.mark.slow
def test_a_node_lost_mid_search_takes_its_tasks_not_the_search(mod, tmp_path):
    """Two one-CPU worker nodes; one is removed (its raylet killed) while an evaluation runs
    on it: that task is run again on the other and the search decides as in-process."""
    from pathlib import Path

    budget = 1.3 * PyLatency(f"{mod}:latency_ms").latency_ms(B0, 224)
    script = Path(__file__).with_name("ray_node_loss.py")
    import shutil
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="llnl-", dir="/tmp")     # short: Ray's socket paths
    try:
        p = subprocess.run([sys.executable, str(script), str(tmp_path), mod, str(budget),
                            str(tmp_path / "node_loss.json")],
                           capture_output=True, text=True, timeout=400,
                           env={**os.environ, "RAY_TMPDIR": ray_tmp})
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads((tmp_path / "node_loss.json").read_text())
    assert out["same"] and out["evaluations"] > 10
    assert out["lost_with_node"] == 1 and out["lost_then_done"]
    assert out["alive_nodes"] == 2      # the head and the survivor


def test_a_cuda_evaluator_on_a_cluster_without_gpus_is_refused_at_submission(
        mod, tmp_path, ray_cluster, capsys):
    """zen,device=cuda is not refused here for want of CUDA (it runs elsewhere) but asks each
    task for a GPU, which no node of this cluster has: one line, exit 2, nothing evaluated."""
    from latency_lab.scaleout.executors import Resources
    from latency_lab.search.evaluators import parse_evaluator

    assert parse_evaluator("zen,device=cuda", elsewhere=True).resources() == \
        Resources(cpus=1.0, gpus=1.0)
    assert parse_evaluator("zen,threads=2").resources() == Resources(cpus=2.0)
    args = _args(mod, "gpu", executor="ray")
    args[args.index("--accuracy") + 1] = "zen,device=cuda"
    t = time.monotonic()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs CPU 1, GPU 1, the cluster has 1 live node(s) with CPU 2, " \
                              "GPU 0" in err[0]
    assert time.monotonic() - t < 30
