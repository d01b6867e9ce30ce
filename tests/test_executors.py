"""--executor parsing, the in-process and process-pool executors, and their fault handling."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import executor_helpers as h
from latency_lab.errors import UserError
from latency_lab.scaleout.executors import (ExecutorError, ExecutorSpec, InlineExecutor, Resources,
                                            open_executor,
                                   parse_executor)


@pytest.mark.parametrize("text, kind, workers, address", [
    ("local", "local", 1, None), (None, "local", 1, None), (" local:3 ", "processes", 3, None),
    ("ray", "ray", 1, None), ("ray:auto", "ray", 1, "auto"),
    ("ray://head.example:10001", "ray", 1, "ray://head.example:10001"),
])
def test_parse_executor(text, kind, workers, address):
    spec = parse_executor(text)
    assert (spec.kind, spec.workers, spec.address) == (kind, workers, address)
    assert spec.is_ray == (kind == "ray")


@pytest.mark.parametrize("text, message", [
    ("local:0", "N >= 1"), ("local:x", "N >= 1"), ("threads", "unknown --executor"),
    ("ray://head", "ray://HOST:PORT"), ("ray:head:1", "unknown --executor"),
])
def test_bad_executor_is_a_user_error(text, message):
    with pytest.raises(ExecutorError, match=message.replace("(", r"\(")):
        parse_executor(text)


def test_resources_in_rays_terms():
    r = Resources(cpus=2, gpus=1, custom=(("pixel2", 1.0),))
    assert r.ray_options() == {"num_cpus": 2, "num_gpus": 1, "resources": {"pixel2": 1.0}}
    assert r.as_dict() == {"CPU": 2.0, "GPU": 1.0, "pixel2": 1.0}
    assert Resources(cpus=0.5).describe() == "CPU 0.5"


def test_inline_runs_in_order_in_this_process():
    out = list(InlineExecutor().map_unordered(h.square, [3, 1, 2]))
    assert out == [(0, (9, os.getpid())), (1, (1, os.getpid())), (2, (4, os.getpid()))]


@pytest.mark.slow
def test_process_pool_gives_every_result_once_from_its_workers():
    items = list(range(8))
    with open_executor(parse_executor("local:2")) as ex:
        out = dict(ex.map_unordered(h.square, items))
        again = dict(ex.map_unordered(h.square, items))   # the pool is kept between batches
    assert sorted(out) == items and {i: v[0] for i, v in out.items()} == {i: i * i for i in items}
    pids = {v[1] for v in out.values()}
    assert os.getpid() not in pids and len(pids) == 2
    assert {v[1] for v in again.values()} == pids


def test_process_pool_passes_the_evaluators_error_on():
    with open_executor(parse_executor("local:2")) as ex:
        with pytest.raises(UserError, match="evaluator refuses 2"):
            dict(ex.map_unordered(h.refuse_two, [0, 1, 2, 3]))


def test_process_pool_reruns_the_tasks_of_a_worker_that_died(tmp_path):
    """A worker that dies mid-task breaks the pool: it is rebuilt and the unfinished tasks
    are run again, with the same results as a run without the fault."""
    items = [(str(tmp_path), x) for x in range(4)]
    with open_executor(parse_executor("local:2")) as ex:
        out = dict(ex.map_unordered(h.exit_once, items))
    assert out == {i: i * i for i in range(4)}
    assert (tmp_path / "exited-0").exists()


def test_process_pool_gives_up_after_max_retries(tmp_path):
    ex = open_executor(ExecutorSpec("local:1", "processes", 1), max_retries=0)
    with ex, pytest.raises(ExecutorError, match="died 1 times"):
        dict(ex.map_unordered(h.exit_once, [(str(tmp_path), 0)]))


@pytest.mark.slow
def test_executor_without_ray_installed_is_one_line_exit_2(tmp_path):
    """`--executor ray` where Ray cannot be imported: one line naming the extra, exit 2."""
    (tmp_path / "plan.toml").write_text(
        'networks = ["efficientnet-b0"]\nresolutions = "224"\n[devices.c]\ndriver = "cpu"\n')
    code = ("import sys; sys.modules['ray'] = None; from latency_lab.cli.app import main;"
            f"sys.exit(main(['sweep-plan', {str(tmp_path / 'plan.toml')!r}, '--executor', 'ray']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0
    assert "--executor ray needs Ray, which is not installed: pip install 'latency-lab[ray]'" in p.stderr


@pytest.mark.slow
def test_process_pool_gives_each_gpu_worker_its_own_gpu():
    """local:N with a GPU evaluator: worker i sees only GPU i (CUDA_VISIBLE_DEVICES), as Ray
    gives each GPU task its own; checked here on the variable, not on a GPU."""
    with open_executor(parse_executor("local:2")) as ex:
        seen = dict(ex.map_unordered(h.visible_gpus, list(range(8)), Resources(gpus=1)))
        threads = dict(ex.map_unordered(h.thread_env, [0, 1], Resources(cpus=2)))
    assert set(seen.values()) == {"0", "1"}
    assert set(threads.values()) == {"2"}
