"""A sweep plan on Ray: one `DeviceHost` actor per device, every sweep a call on its actor.

All sweeps are submitted at once; an actor runs its own calls in order, so one device is never
measured by two sweeps at a time while different devices measure side by side. A device actor
holds the CPUs (and GPU) it was placed with for as long as it lives, so it is ended as soon as
its last sweep is back: devices that did not fit the cluster at first then get their turn.
As each sweep comes back its samples are merged into the caller's store and its CSV written.
A sweep whose device actor died (its process or node lost) is run once more by a restarted
actor, which resumes from the device's store on that host; if no live node can hold the
device any more the sweep fails after `LOST_GRACE_S` and the others go on. Imported only with
`--executor ray...`.
"""

from __future__ import annotations

import time
from typing import Callable

from latency_lab.scaleout.device_actor import close_device_actor, open_device_actor
from latency_lab.errors import UserError
from latency_lab.scaleout.ray_executor import check_placeable, placeable

POLL_S = 2.0
LOST_GRACE_S = 30.0


def run_jobs_on_ray(ray, jobs, plan, store, remeasure: bool,
                    finish: Callable[..., None]) -> None:
    from latency_lab.measure.store_merge import import_measurements

    devices = {j.device.label: j.device for j in jobs}
    for dev in devices.values():        # every device placeable, or nothing starts
        check_placeable(ray, dev.placement(), f"device {dev.label} ({dev.driver})")
    actors: dict[str, object] = {}
    try:
        for label, dev in devices.items():
            actors[label] = open_device_actor(ray, dev, plan.host_store_dir)
        where = {label: a.where.remote() for label, a in actors.items()}   # runs first
        refs = {}
        for i, job in enumerate(jobs):
            points = [(job.network, r) for r in job.resolutions]
            refs[actors[job.device.label].measure.remote(points, plan.protocol, remeasure)] = i
        left = {label: sum(j.device.label == label for j in jobs) for label in devices}
        pending, lost_since = list(refs), {}
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in done:
                i = refs[ref]
                label = jobs[i].device.label
                host = _host(ray, where[label])
                try:
                    ms, dump = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if not isinstance(cause, UserError):
                        raise
                    finish(i, [], str(cause), host)
                except ray.exceptions.RayError as exc:
                    finish(i, [], f"device actor lost ({type(exc).__name__}); what it measured "
                                  f"is in its store on {host}: run the plan again to resume",
                           host)
                else:
                    finish(i, ms, None, host, import_measurements(store, dump))
                left[label] -= 1
                if not left[label]:     # its last sweep: free what it holds for the others
                    close_device_actor(ray, actors.pop(label))
            pending = _drop_lost(ray, pending, refs, jobs, lost_since, finish)
    finally:
        for actor in actors.values():
            close_device_actor(ray, actor)


def _host(ray, ref) -> str:
    try:
        return ray.get(ref, timeout=10).get("host", "")
    except Exception:   # the actor is gone: the sweep's own error says so
        return ""


def _drop_lost(ray, pending, refs, jobs, lost_since, finish):
    """Sweeps whose device no live node can hold any more fail after LOST_GRACE_S."""
    now = time.monotonic()
    keep = []
    for ref in pending:
        dev = jobs[refs[ref]].device
        if placeable(ray, dev.placement()):
            lost_since.pop(dev.label, None)
            keep.append(ref)
            continue
        since = lost_since.setdefault(dev.label, now)
        if now - since < LOST_GRACE_S:
            keep.append(ref)
            continue
        ray.cancel(ref)
        finish(refs[ref], [], f"device {dev.label}: no live node can hold it any more (its host "
                              f"left the cluster?); run the plan again to resume", "")
    return keep
