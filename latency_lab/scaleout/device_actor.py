"""A device as a Ray actor: the one process that owns it, measuring one job at a time.

Latency measurements never mix devices and never share one: a phone is attached to one host,
a GPU is best driven by one process. So a device is opened once, by a `DeviceHost`, and every
sweep or search that measures on it talks to that object; on Ray it is a named actor
(`device:LABEL` in the `latency-lab` namespace: a second owner of the same label is refused),
placed by what the device needs (`DeviceSpec.placement`: its CPU threads, a GPU for a driver that `needs_gpu`,
`host = "IP"` for a node, named resources such as `{pixel2 = 1}` declared by `ray start
--resources` on the host the phone is plugged into), executing its calls one after another
(an actor's default concurrency of 1). Different devices' actors run side by side.

Where samples go: each device commits to a store of its own on its own host
(`<cache>/device-stores/LABEL.sqlite`, or `host_store_dir`), and what it measured comes back
as a dump merged into the caller's store (`store_merge.py`) when each job finishes. Not one
shared SQLite file, because (1) SQLite's locking is unsafe on network filesystems and a Ray
cluster promises no shared disk at all; (2) a sample is committed where it is taken, so a
lost driver or link loses nothing and the job resumes from that store on the same host;
(3) actors measuring side by side never wait on each other's write locks mid-measurement.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from latency_lab.scaleout.executors import ExecutorError, Resources
from latency_lab.network.spec import NetworkSpec

if TYPE_CHECKING:
    from latency_lab.measure.protocol import Protocol

@dataclass(frozen=True)
class DeviceSpec:
    """A device to open: driver name, driver options, and where it must run."""

    label: str
    driver: str
    options: tuple[tuple[str, Any], ...] = ()
    host: str | None = None                 # a Ray node's IP address
    cpus: float | None = None               # default: the driver's `threads` option, or 1
    gpus: float | None = None               # default: 1 for a GPU driver, else 0
    resources: tuple[tuple[str, float], ...] = field(default=())

    def placement(self) -> Resources:
        from latency_lab.measure.api import device_class   # the driver says if it needs a GPU

        opts = dict(self.options)
        cpus = self.cpus if self.cpus is not None else float(opts.get("threads") or 1)
        gpus = self.gpus if self.gpus is not None else \
            (1.0 if device_class(self.driver).needs_gpu else 0.0)
        custom = tuple(self.resources)
        if self.host:   # Ray's built-in resource of each node, "node:IP" (1.0 per node)
            custom += ((f"node:{self.host}", 0.001),)
        return Resources(cpus, gpus, custom)

    @property
    def file_label(self) -> str:
        from latency_lab.fileio import safe_name

        return safe_name(self.label)

    def check(self) -> None:
        """The driver exists and takes these options (converted as opening it will), without
        opening the device: a plan is checked whole before its first sweep."""
        from latency_lab.errors import UserError
        from latency_lab.measure.api import (DeviceError, device_class, device_names,
                                             driver_options)

        head, sep, arg = self.driver.partition(":")
        name = head if sep and head in device_names() else self.driver
        options = dict(self.options, **({"path": arg} if name != self.driver else {}))
        try:
            driver_options(device_class(name), options, self.driver)
        except UserError:
            raise
        except Exception as exc:   # importing a module:Class driver failed
            raise DeviceError(f"cannot load driver {self.driver!r}: {type(exc).__name__}: "
                              f"{exc}") from None


class DeviceHost:
    """Owns one opened device and a store on its host; the body of a device actor (and the
    in-process owner when there is no Ray)."""

    def __init__(self, device: DeviceSpec, store_path: str | None = None,
                 store_dir: str | None = None):
        from latency_lab.measure.api import get_device
        from latency_lab.paths import cache_dir
        from latency_lab.measure.store import Store

        self.spec = device
        self.device = get_device(device.driver, **dict(device.options))
        self.info = self.device.info()
        if store_path is None:
            folder = Path(store_dir).expanduser() if store_dir else cache_dir() / "device-stores"
            store_path = str(folder / f"{device.file_label}.sqlite")
        self.store = Store(store_path)

    def where(self) -> dict[str, Any]:
        """Host, process, store path and the device's info (a dict), for logs and checks."""
        return {"host": socket.gethostname(), "pid": os.getpid(),
                "store": str(self.store.path), "device": self.info.to_dict(),
                "spec": self.spec}

    def measure(self, points: Sequence[tuple[NetworkSpec, int]], protocol: "Protocol",
                remeasure: bool = False, fresh: bool = False):
        """Measurements of the points (the interleaved protocol, resumable in this host's
        store; `fresh`: as `measure_points` takes it) and the dump of their rows to merge into
        the caller's store."""
        from latency_lab.measure.protocol import measure_points
        from latency_lab.measure.store_merge import export_measurements

        points = [(s, int(r)) for s, r in points]
        ms = measure_points(self.device, points, self.store, protocol, remeasure, fresh=fresh)
        dump = export_measurements(self.store, self.info.context_key,
                                   [(s.fingerprint, r) for s, r in points])
        return ms, dump

    def close(self) -> None:
        self.device.close()
        self.store.close()


class _DeviceActor(DeviceHost):
    """The actor's body: a device that cannot be opened is reported by `where()` (as its
    one-line error) instead of killing the actor, whose creation error Ray keeps only as a
    traceback text."""

    def __init__(self, device: DeviceSpec, store_path: str | None = None,
                 store_dir: str | None = None):
        from latency_lab.errors import UserError

        self.error = None
        try:
            super().__init__(device, store_path, store_dir)
        except UserError as exc:
            self.spec, self.error = device, f"cannot open device {device.label}: {exc}"

    def where(self) -> dict[str, Any]:
        if self.error:
            return {"host": socket.gethostname(), "pid": os.getpid(), "error": self.error}
        return super().where()

    def measure(self, points, protocol, remeasure=False, fresh=False):
        if self.error:
            from latency_lab.errors import UserError

            raise UserError(self.error)
        return super().measure(points, protocol, remeasure, fresh)

    def close(self) -> None:
        if not self.error:
            super().close()


def open_device_actor(ray, device: DeviceSpec, store_dir: str | None = None,
                      max_restarts: int = 1):
    """A new `DeviceHost` actor named `device:LABEL`, placed by `device.placement()`.

    Refused at once when no live node has what the device needs, or when another run on the
    cluster already owns the label. A restarted actor (its process or node died) opens the
    device again and resumes from its host's store."""
    from latency_lab.scaleout.ray_executor import NAMESPACE, check_placeable

    need = device.placement()
    check_placeable(ray, need, f"device {device.label} ({device.driver})")
    name = f"device:{device.label}"
    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        pass
    else:
        raise ExecutorError(f"device {device.label} is in use by another run on this Ray "
                            f"cluster (actor {name}); wait for it or give another label")
    actor = ray.remote(_DeviceActor).options(
        name=name, namespace=NAMESPACE, max_restarts=max_restarts,
        max_task_retries=max_restarts, max_concurrency=1, **need.ray_options())
    return actor.remote(device, None, store_dir)


def close_device_actor(ray, actor) -> None:
    """Close the device, then end the actor (so its name is free again)."""
    try:
        ray.get(actor.close.remote(), timeout=60)
    except Exception:   # the actor or its node is already gone: nothing left to close
        pass
    ray.kill(actor, no_restart=True)


__all__ = ["DeviceSpec", "DeviceHost", "open_device_actor", "close_device_actor"]
