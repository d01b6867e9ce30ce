"""Functions the executor tests run in worker processes (imported there by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from latency_lab.errors import UserError


def square(x: int) -> tuple[int, int]:
    """x*x and the pid that computed it."""
    time.sleep(0.05)
    return x * x, os.getpid()


def burn(seconds: float) -> float:
    """Busy CPU work for `seconds` (the kind of evaluation a process pool speeds up)."""
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        n += 1
    return seconds


def refuse_two(x: int) -> int:
    if x == 2:
        raise UserError("evaluator refuses 2")
    return x


def die_once(task: tuple[str, int]) -> int:
    """In a fresh `folder`, the first call for item 0 writes its pid and blocks (until the
    test kills it); every later call returns x*x at once."""
    folder, x = task
    marker = Path(folder) / f"started-{x}"
    if x == 0 and not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(120)
    return x * x


def exit_once(task: tuple[str, int]) -> int:
    """Like die_once, but the worker ends itself (os._exit) on its first call for item 0."""
    folder, x = task
    marker = Path(folder) / f"exited-{x}"
    if x == 0 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(13)
    return x * x


def visible_gpus(_) -> str:
    time.sleep(0.1)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def thread_env(_) -> str:
    return os.environ.get("OMP_NUM_THREADS", "")
