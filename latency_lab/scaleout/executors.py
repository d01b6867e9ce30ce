"""Where independent pieces of work run: this process, N local processes, or a Ray cluster.

`--executor NAME[:ARG]` (on `search`, `scale`, `compare`, `sweep-plan`) is parsed once, by
`parse_executor`, which asks the executor class registered as NAME (`EXECUTORS`, or the
entry-point group `latency_lab.executors`):

    local            everything in this process, one after the other (the default)
    local:N          N worker processes on this machine (spawned, so no thread state is forked)
    ray              join the Ray instance this machine runs (RAY_ADDRESS, or the last
                     `ray start`), else start a local one for this run
    ray:auto         join an existing cluster (RAY_ADDRESS or the last `ray start`); none: error
    ray://HOST:PORT  an existing cluster through Ray Client (`ray start --head` serves port 10001)

An executor runs one function over a batch of picklable items (`map_unordered`) and yields
`(index, result)` as each finishes, in any order; the caller records each result as it arrives
and decides only when the batch is complete, so the outcome does not depend on the executor.
Each item asks for `Resources` (CPUs, GPUs, named resources such as a phone's); Ray schedules
by them, a process pool gives GPU worker i the GPU i.

Faults: a worker process that dies mid-task is replaced and its task run again, up to
`max_retries` times (Ray's task retries; the process pool rebuilt); an exception raised *by*
the function is not retried (it is the evaluator's answer) and stops the batch.

Ray is imported only by `open_executor` of a Ray spec (`latency_lab.scaleout.ray_executor`): `--help` and the
default executor never load it (importing ray costs ~1 s here).
"""

from __future__ import annotations

import os

from latency_lab.interrupts import children_deaf
from latency_lab.scaleout.base import (DEFAULT_RETRIES, RAY_HINT, Executor, ExecutorError,
                                       ExecutorSpec, Resources, _call_in, _short)

# The built-in executors, listed once; other packages add theirs through the entry-point group
# (pyproject: [project.entry-points."latency_lab.executors"] NAME = "module:Class").
EXECUTORS: dict[str, str] = {
    "local": "latency_lab.scaleout.executors:InlineExecutor",
    "ray": "latency_lab.scaleout.ray_executor:RayExecutor",
}
ENTRY_POINT_GROUP = "latency_lab.executors"


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def executor_names() -> list[str]:
    return sorted(set(EXECUTORS) | set(_plugins()))


def executor_class(name: str) -> type[Executor]:
    """The executor class registered as `name` (built-in or entry point)."""
    import importlib

    target = EXECUTORS.get(name) or _plugins().get(name)
    if target is None:
        raise ExecutorError(f"unknown --executor {name!r}; known: {', '.join(executor_names())} "
                            f"(local, local:N, ray, ray:auto or ray://HOST:PORT)")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ExecutorError(f"cannot load executor {name} ({target}): {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise ExecutorError(f"executor {name}: {target} is not an Executor subclass")
    return cls


def executor_help() -> str:
    """The help of --executor, from the built-in executors' own SYNTAX."""
    forms = [f"{form} ({meaning})" for name in EXECUTORS
             for form, meaning in executor_class(name).SYNTAX]
    return ("Where evaluations run: " + ", ".join(forms) + ", or an executor installed "
            "through the entry-point group latency_lab.executors.")


def open_executor(spec: ExecutorSpec, max_retries: int = DEFAULT_RETRIES) -> Executor:
    """The executor a parsed `--executor` names, ready to `map_unordered` (close it, or use it
    as a context manager). Ray is imported here, only for a Ray spec."""
    return executor_class(spec.executor).create(spec, max_retries)


def parse_executor(text: str | None) -> ExecutorSpec:
    """`NAME[:ARG]` (`local`, `local:N`, `ray`, `ray:auto`, `ray://HOST:PORT`, a plugin's) ->
    ExecutorSpec, checked before anything runs (a Ray spec where Ray is not installed is
    refused here: found, not imported)."""
    raw = (text or "local").strip()
    name, sep, arg = raw.partition(":")
    return executor_class(name).parse(raw, arg if sep else None)


class InlineExecutor(Executor):
    """`local`: in this process, in order; what the search did before executors existed.
    `local:N` (parsed here too) is the `ProcessExecutor`."""

    name = "local"
    SYNTAX = (("local", "this process"), ("local:N", "N processes"))

    def __init__(self, spec: ExecutorSpec | None = None, max_retries: int = DEFAULT_RETRIES):
        self.spec = spec or ExecutorSpec("local")

    @classmethod
    def parse(cls, text: str, arg: str | None) -> ExecutorSpec:
        if arg is None:
            return ExecutorSpec(text)
        try:
            n = int(arg)
        except ValueError:
            n = 0
        if n < 1:
            raise ExecutorError(f"--executor {text!r}: local:N needs a number of worker "
                                f"processes N >= 1")
        return ExecutorSpec(text, "processes", n, name="local")

    @classmethod
    def create(cls, spec: ExecutorSpec, max_retries: int = DEFAULT_RETRIES) -> Executor:
        if spec.kind == "processes":
            return ProcessExecutor(spec, max_retries)
        return cls(spec)

    def map_unordered(self, fn, items, resources=Resources()):
        for i, item in enumerate(items):
            yield i, fn(item)


def _init_worker(env: dict[str, str], gpu_slots) -> None:
    """Pool worker set-up, before any task imports torch: thread counts and its GPU.

    A multiprocessing child skips the `atexit` handlers at its end but joins its own child
    processes, so a pool a task started (the Keras converter's, `build_keras`) would be waited
    for forever: the handlers are run as the worker's first finalizer instead."""
    import atexit
    from multiprocessing.util import Finalize

    Finalize(None, atexit._run_exitfuncs, exitpriority=100)
    os.environ.update(env)
    if gpu_slots is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_slots.get())


class ProcessExecutor(Executor):
    """`local:N`: a pool of N spawned worker processes, kept for the executor's lifetime.

    Each worker gets one intra-op thread per CPU it was given (OMP_NUM_THREADS and friends,
    as Ray sets them), so N workers do not oversubscribe N cores; a worker asked for a GPU
    sees only its own (CUDA_VISIBLE_DEVICES = its slot). A worker that dies breaks the pool:
    the pool is rebuilt and the unfinished tasks submitted again, each at most `max_retries`
    more times.
    """

    def __init__(self, spec: ExecutorSpec, max_retries: int = DEFAULT_RETRIES):
        self.spec, self.workers, self.max_retries = spec, spec.workers, max_retries
        self._pool = None       # a concurrent.futures.ProcessPoolExecutor, made on first use
        self._pool_key: Resources | None = None

    def _open(self, resources: Resources):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is not None and self._pool_key == resources:
            return self._pool
        self._shutdown()
        threads = str(max(1, int(resources.cpus)))
        env = {v: threads for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                    "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")}
        ctx = multiprocessing.get_context("spawn")
        slots = None
        if resources.gpus:
            slots = ctx.SimpleQueue()
            for i in range(self.workers):
                slots.put(i)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(env, slots))
        self._pool_key = resources
        return self._pool

    def map_unordered(self, fn, items, resources=Resources()):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        cwd = os.getcwd()
        attempts = [0] * len(items)
        todo = set(range(len(items)))
        while todo:
            pool = self._open(resources)
            with children_deaf():   # workers spawn on submit: Ctrl-C is this process's
                futures = {pool.submit(_call_in, cwd, fn, items[i]): i for i in sorted(todo)}
            broken = False
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = futures[fut]
                        try:
                            value = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        todo.discard(i)
                        yield i, value
            except BaseException:
                self._shutdown(kill=True)
                raise
            if broken:
                self._shutdown(kill=True)
                for i in todo:
                    attempts[i] += 1
                    if attempts[i] > self.max_retries:
                        raise ExecutorError(f"a worker process died {attempts[i]} times while "
                                            f"running task {i} of {len(items)} "
                                            f"({_short(items[i])}); giving up")

    def _shutdown(self, kill: bool = False, grace_s: float = 30.0) -> None:
        """Stop the workers: at once (`kill`: a task was abandoned) or once they exit after
        their last task, killing any still there after `grace_s`."""
        import time

        pool, self._pool = self._pool, None
        if pool is None:
            return
        # concurrent.futures has no terminate(); its worker table is the only handle on the
        # processes (read before shutdown() drops it).
        procs = list((getattr(pool, "_processes", None) or {}).values())
        if kill:
            for proc in procs:
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace_s
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()

    def close(self) -> None:
        self._shutdown()

    def abort(self) -> None:
        self._shutdown(kill=True)


EXECUTOR_HELP = executor_help()

__all__ = ["ExecutorSpec", "Executor", "ExecutorError", "InlineExecutor", "ProcessExecutor",
           "Resources", "open_executor", "parse_executor", "executor_class", "executor_names",
           "EXECUTORS", "ENTRY_POINT_GROUP", "EXECUTOR_HELP", "DEFAULT_RETRIES", "RAY_HINT"]
