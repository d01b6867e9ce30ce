"""Ray as an executor (`--executor ray | ray:auto | ray://HOST:PORT`); imported only when named.

Each item of a batch is one Ray task that asks for the item's `Resources` (num_cpus,
num_gpus, named resources); results are collected with `ray.wait` as they finish, in any order.

Faults, as Ray handles them and where this module adds to it:
- a worker process killed mid-task, or a node that dies with tasks on it: Ray runs the task
  again elsewhere, up to `max_retries` times (`retry_exceptions=False`: an exception raised by
  the evaluator itself is its answer, not a fault, and is not retried);
- a task no live node can ever run (an evaluator asks for a GPU on a CPU-only cluster): Ray
  would keep it pending for ever with a warning in its log. It is refused at submission, and
  while tasks are waiting the live nodes are checked every `poll_s`: if none can run them for
  `lost_grace_s` (the only GPU node left), the batch stops with an error instead of hanging;
  the evaluations finished so far are already in the cache, so a rerun resumes.
- tasks still running when the batch stops (error, Ctrl-C) are cancelled.
"""

from __future__ import annotations

import logging
import re
import os
import time
from typing import Any

from latency_lab.scaleout.base import (DEFAULT_RETRIES, RAY_HINT, Executor, ExecutorError,
                                       ExecutorSpec, Resources, _call_in, _short)
from latency_lab.errors import UserError

NAMESPACE = "latency-lab"


def import_ray():
    """`ray`, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed: "
                            f"{RAY_HINT}") from None
    return ray


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")
PROBE_S = 5.0


def client_address(text: str) -> tuple[str, int]:
    """`ray://HOST:PORT` -> (HOST, PORT), checked before anything connects: a host name or
    IP address (IPv6 in brackets) and a port 1..65535."""
    host, colon, port = text[len("ray://"):].rpartition(":")
    usage = (f"--executor {text!r}: give the Ray Client address as ray://HOST:PORT (a head "
             "node serves port 10001)")
    if not host or not colon or not port.isdigit():
        raise ExecutorError(usage)
    if not _HOST.match(host):
        raise ExecutorError(f"{usage}; {host!r} is not a host name or IP address")
    if not 1 <= int(port) <= 65535:
        raise ExecutorError(f"{usage}; port {port} is not in 1..65535")
    return host, int(port)


def _probe(spec: ExecutorSpec) -> None:
    """Ray Client waits 30 s for an address where nothing listens, then warns in three lines;
    one TCP connection with a PROBE_S timeout says it in one line first."""
    import socket

    host, port = client_address(spec.address)
    try:
        socket.create_connection((host.strip("[]"), port), timeout=PROBE_S).close()
    except OSError as exc:
        why = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise ExecutorError(f"--executor {spec.text}: cannot reach {host}:{port} ({why}); is "
                            "`ray start --head` running there, with its Ray Client port open?"
                            ) from None


def connect(spec: ExecutorSpec) -> bool:
    """Join or start Ray as the spec says; True when this call initialised it (and so should
    shut it down), False when this process was already connected."""
    import warnings

    ray = import_ray()
    if ray.is_initialized():
        return False
    if spec.address and spec.address.startswith("ray://"):
        _probe(spec)
    try:
        with warnings.catch_warnings():   # the error below says it, in one line
            warnings.simplefilter("ignore")
            ray.init(address=spec.address, include_dashboard=False, namespace=NAMESPACE,
                     logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        where = {"auto": "RAY_ADDRESS or a running `ray start` on this machine",
                 None: "this machine"}.get(spec.address, spec.address)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorError(f"--executor {spec.text}: cannot connect to Ray ({where}): "
                            f"{first}") from None
    return True


def live_nodes(ray) -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def placeable(ray, resources: Resources) -> bool:
    """Whether one live node has all of `resources` (in total, busy or not)."""
    need = resources.as_dict()
    return any(all(n["Resources"].get(k, 0.0) >= v for k, v in need.items())
               for n in live_nodes(ray))


def cluster_summary(ray) -> str:
    nodes = live_nodes(ray)
    total: dict[str, float] = {"CPU": 0.0, "GPU": 0.0}
    for n in nodes:
        for k, v in n["Resources"].items():
            if k in ("CPU", "GPU") or not (k.startswith("node:") or "memory" in k):
                total[k] = total.get(k, 0.0) + v
    have = ", ".join(f"{k} {v:g}" for k, v in sorted(total.items())) or "no resources"
    return f"{len(nodes)} live node(s) with {have}"


def check_placeable(ray, resources: Resources, what: str) -> None:
    if not placeable(ray, resources):
        hint = (" (start a node with GPUs: ray start --num-gpus N, or evaluate on the CPU)"
                if resources.gpus else "")
        raise ExecutorError(f"no node of the Ray cluster can run {what}: each needs "
                            f"{resources.describe()}, the cluster has {cluster_summary(ray)}"
                            f"{hint}")


class RayExecutor(Executor):
    """Tasks on a Ray cluster; see the module docstring for the fault handling."""

    name = "ray"
    SYNTAX = (("ray", "join or start a local Ray"),
              ("ray:auto or ray://HOST:PORT", "a Ray cluster"))
    poll_s = 2.0
    lost_grace_s = 30.0

    def __init__(self, spec: ExecutorSpec, max_retries: int = DEFAULT_RETRIES):
        self.ray = import_ray()
        self.spec, self.max_retries = spec, max_retries
        self.owned = connect(spec)
        self.workers = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self._remote = self.ray.remote(_call_in)

    @classmethod
    def parse(cls, text: str, arg: str | None) -> ExecutorSpec:
        """`ray`, `ray:auto`, `ray://HOST:PORT`; refused where Ray is not installed (found,
        not imported: importing ray costs about a second)."""
        import importlib.util

        if arg is None:
            spec = ExecutorSpec(text, "ray")
        elif arg == "auto":
            spec = ExecutorSpec(text, "ray", address="auto")
        elif arg.startswith("//"):
            host, port = client_address(text)
            spec = ExecutorSpec(text, "ray", address=f"ray://{host}:{port}")
            if importlib.util.find_spec("grpc") is None:
                raise ExecutorError(f"--executor {text}: Ray Client needs grpcio, which is not "
                                    f"installed: pip install 'ray[client]'")
        else:
            raise ExecutorError(f"unknown --executor {text!r}; use ray, ray:auto or "
                                f"ray://HOST:PORT")
        if importlib.util.find_spec("ray") is None:
            raise ExecutorError(f"--executor {text} needs Ray, which is not installed: "
                                f"{RAY_HINT}")
        return spec

    def describe(self) -> str:
        return f"{self.spec.text} ({cluster_summary(self.ray)})"

    def map_unordered(self, fn, items, resources=Resources()):
        ray = self.ray
        if not items:
            return
        check_placeable(ray, resources, f"these {len(items)} task(s) ({_short(items[0])}, ...)")
        # SPREAD: a batch's tasks go to different nodes where they can (one candidate per
        # GPU node rather than a queue on the first), instead of Ray's default packing.
        task = self._remote.options(max_retries=self.max_retries, retry_exceptions=False,
                                    scheduling_strategy="SPREAD", **resources.ray_options())
        cwd = os.getcwd()
        refs = {task.remote(cwd, fn, item): i for i, item in enumerate(items)}
        pending = list(refs)
        stuck_since = None
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=self.poll_s)
                if not done:
                    stuck_since = self._check_stuck(resources, stuck_since, len(pending))
                    continue
                for ref in done:
                    i = refs[ref]
                    yield i, self._get(ref, items[i])
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or gone with its node: nothing to stop
                    pass

    def _check_stuck(self, resources: Resources, since: float | None, n: int) -> float | None:
        if placeable(self.ray, resources):
            return None
        now = time.monotonic()
        if since is None:
            return now
        if now - since >= self.lost_grace_s:
            raise ExecutorError(f"{n} task(s) needing {resources.describe()} cannot run: no "
                                f"live node has it any more ({cluster_summary(self.ray)}); the "
                                f"results that came back are kept, run again to resume")
        return since

    def _get(self, ref, item) -> Any:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, UserError):
                raise cause from None     # the evaluator's own one-line error
            raise
        except ray.exceptions.RayError as exc:     # worker or node lost, retries used up
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExecutorError(f"{_short(item)}: failed on the Ray cluster after "
                                f"{self.max_retries} retries ({type(exc).__name__}: "
                                f"{first})") from None

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False


__all__ = ["RayExecutor", "import_ray", "connect", "placeable", "check_placeable",
           "cluster_summary", "NAMESPACE"]
