"""The Ray executor on a real local Ray instance (127.0.0.1, 2 CPUs): results in any order,
resources checked at submission, a killed worker's task retried."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import executor_helpers as h
from latency_lab.errors import UserError
from latency_lab.scaleout.executors import ExecutorError, Resources, open_executor, parse_executor


@pytest.fixture
def ray_ex(ray_cluster):
    with open_executor(parse_executor("ray")) as ex:
        yield ex
    assert ray_cluster.is_initialized()   # joined the running instance: not shut down


@pytest.mark.slow
def test_ray_gives_every_result_once_from_worker_processes(ray_ex):
    assert ray_ex.workers == 2 and "1 live node(s) with CPU 2" in ray_ex.describe()
    out = dict(ray_ex.map_unordered(h.square, list(range(10))))
    assert {i: v[0] for i, v in out.items()} == {i: i * i for i in range(10)}
    assert os.getpid() not in {v[1] for v in out.values()}


def test_ray_passes_the_evaluators_error_on_as_it_is(ray_ex):
    with pytest.raises(UserError, match="^evaluator refuses 2$"):
        dict(ray_ex.map_unordered(h.refuse_two, [0, 1, 2, 3]))


def test_a_gpu_task_on_a_cluster_without_gpus_is_refused_at_submission(ray_ex):
    t = time.monotonic()
    with pytest.raises(ExecutorError, match=r"needs CPU 1, GPU 1, the cluster has 1 live "
                                            r"node\(s\) with CPU 2, GPU 0 \(start a node with "
                                            r"GPUs: ray start --num-gpus N"):
        dict(ray_ex.map_unordered(h.square, [1, 2], Resources(gpus=1)))
    assert time.monotonic() - t < ray_ex.lost_grace_s / 2     # at submission, not when stuck
    with pytest.raises(ExecutorError, match="needs CPU 1, pixel2 1"):
        dict(ray_ex.map_unordered(h.square, [1], Resources(custom=(("pixel2", 1.0),))))


def _kill_when_started(marker, killed: list) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text():
                pid = int(marker.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_worker_killed_by_pid_mid_task_is_retried_with_the_same_results(ray_ex, tmp_path):
    items = [(str(tmp_path), x) for x in range(6)]
    killed: list[int] = []
    watcher = _kill_when_started(tmp_path / "started-0", killed)
    out = dict(ray_ex.map_unordered(h.die_once, items))
    watcher.join()
    assert killed and killed[0] != os.getpid()
    assert out == {i: i * i for i in range(6)}


def test_a_task_that_kills_every_worker_fails_after_its_retries(ray_cluster, tmp_path):
    with open_executor(parse_executor("ray"), max_retries=0) as ex:
        with pytest.raises(ExecutorError, match=r"failed on the Ray cluster after 0 retries"):
            dict(ex.map_unordered(h.exit_once, [(str(tmp_path), 0)]))
