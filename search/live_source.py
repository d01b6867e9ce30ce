"""A device as a latency source: measured live on one scale, or replayed from a recording.

- A device name (`cpu`, a plugin's name, `module:Class`): each batch of points (an RBIS
  iteration's candidates, one probe of a scaling family) is measured by the interleaved
  protocol together with a reference, and put on the search's one latency scale
  (`latency_lab.measure.scale`): the scale is the reference's first steady measurement (or its
  row in a recorded table that comes first in the chain), each batch divided by its factor.
  What the store already has is reused only when it meets the protocol and is tied to the
  scale, and then said. `ActorLatency` is the same with the device in a Ray actor.
- `table:PATH` / `lut:PATH`: the replay devices (`devices/table.py`), answered from the file
  as recorded (no store, no scale: the recorded CI is the answer).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from latency_lab.network.spec import NetworkSpec
from latency_lab.search.pycall import SourceError
from latency_lab.search.source_base import LatencySource, Point, provenance_record


class DeviceLatency(LatencySource):
    """A device: live (on the search's latency scale, cached in the store) or a replay."""

    batched = True   # the search hands over all candidates of an iteration at once

    def __init__(self, name: str, store_path=None, protocol=None, device_options=None,
                 progress=None, reference: NetworkSpec | None = None, remeasure: bool = False,
                 say=None):
        from latency_lab.measure.api import ReplayDevice, get_device
        from latency_lab.paths import default_store_path
        from latency_lab.measure.protocol import Protocol
        from latency_lab.measure.store import Store

        self.name = name
        self.device = get_device(name, **(device_options or {}))
        # a replay answers from its file: nothing is measured, so nothing goes to a store
        self.replay = isinstance(self.device, ReplayDevice)
        self.instant = self.replay
        self.store = None if self.replay else Store(store_path or default_store_path())
        self.protocol = protocol or Protocol()
        self.progress = progress
        self.measurements: dict[tuple[str, int], Any] = {}
        self.scaled: dict[tuple[str, int], Any] = {}
        self.scale = None if self.replay else self._scale(reference, remeasure, say)

    def _scale(self, reference, remeasure, say):
        from latency_lab.measure.scale import LatencyScale

        return LatencyScale(self.device, self.store, self.protocol, base=reference,
                            remeasure=remeasure, say=say, progress=self.progress,
                            measure_fn=self._measure)

    @property
    def kind(self) -> str:
        return self.name.split(":")[0] if self.replay else "live"

    def _measure(self, points: Sequence[Point]) -> list:
        """Measurements of the points (the protocol, on the device this process opened); a
        live batch's finished measurements are not reused (the scale decided what is)."""
        from latency_lab.measure.protocol import measure_points

        return measure_points(self.device, points, self.store, self.protocol,
                              progress=self.progress, fresh=not self.replay)

    def latency_many(self, points: Sequence[Point]) -> list[float]:
        todo, seen = [], set()
        for s, r in points:
            k = (s.fingerprint, int(r))
            if k not in self.measurements and k not in seen:
                todo.append((s, int(r)))
                seen.add(k)
        if todo and self.replay:
            for m in self._measure(todo):
                self.measurements[(m.fingerprint, m.resolution)] = m
        elif todo:
            from latency_lab.measure.scale import ScaleError

            try:
                done = self.scale.measure(todo)
            except ScaleError as exc:
                raise SourceError(f"{exc} (device {self.name})") from None
            for (s, r), v in zip(todo, done):
                self.measurements[(s.fingerprint, r)] = v.measurement
                self.scaled[(s.fingerprint, r)] = v
        return [self.value(s, r) for s, r in points]

    def value(self, spec: NetworkSpec, resolution: int) -> float:
        k = (spec.fingerprint, int(resolution))
        return self.scaled[k].latency_ms if k in self.scaled else self.measurements[k].latency_ms

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        return self.latency_many([(spec, resolution)])[0]

    def measurement(self, spec: NetworkSpec, resolution: int):
        """The full `Measurement` (samples, CI) behind a latency this source returned."""
        return self.measurements.get((spec.fingerprint, int(resolution)))

    @property
    def label(self) -> str:
        """table, lut (a replay), or the device's name."""
        return self.name.split(":")[0] if self.replay else self.name

    def detail(self, spec: NetworkSpec, resolution: int) -> str:
        k = (spec.fingerprint, int(resolution))
        if k in self.scaled:
            return self.scaled[k].describe()
        m = self.measurement(spec, resolution)
        if m is None:
            return ""
        st = m.stats
        ci = f"95% CI {st.ci_low_ms:.3f}-{st.ci_high_ms:.3f} ms"
        if m.stop_reason == "predicted":
            err = m.facts.get("expected_error_pct")
            return (f"LUT prediction (blocks: {ci})"
                    + (f", expected error +-{err:.1f}%" if err is not None else ""))
        if m.stop_reason == "replayed":
            return (f"recorded median of {st.count} samples, {ci}, recorded "
                    f"{m.facts.get('recorded_at', '?')}")
        return (f"median of {st.count} samples in {m.n_rounds} rounds, {ci}, stopped by "
                f"{m.stop_reason}")

    def provenance(self, spec: NetworkSpec, resolution: int) -> dict[str, Any]:
        k = (spec.fingerprint, int(resolution))
        if k in self.scaled:
            v = self.scaled[k]
            return provenance_record(v.provenance, v.ci_low_ms, v.ci_high_ms, v.factor,
                                     v.batch, v.describe())
        m = self.measurement(spec, resolution)
        if m is None:
            return provenance_record(self.kind)
        low, high = m.stats.ci_low_ms, m.stats.ci_high_ms
        err = m.facts.get("expected_error_pct")
        if m.stop_reason == "predicted" and err is not None and math.isfinite(err):
            # a LUT's CI: its expected error (leave-one-out RMS) as a 95% half-width
            low, high = m.latency_ms * (1 - 1.96 * err / 100), m.latency_ms * (1 + 1.96 * err / 100)
        return provenance_record(self.kind, low, high, detail=self.detail(spec, resolution))

    def scale_state(self) -> dict | None:
        return self.scale.to_dict() if self.scale is not None else None

    def restore_scale(self, state: dict | None) -> None:
        if self.scale is not None and state:
            self.scale.restore(state, NetworkSpec.from_dict)

    def device_parts(self) -> list[tuple[str, str]]:
        info = self.device.info()
        return [(info.hardware, f"recorded {self.label}")] if self.replay \
            else [(f"{info.name}: {info.hardware}", "live")]

    def describe(self) -> str:
        info = self.device.info()
        if self.replay:
            return f"{self.name} ({info.hardware}, {info.runtime}, context {info.context_key})"
        return (f"device {info.name} ({info.hardware}, {info.runtime} {info.runtime_version}, "
                f"context {info.context_key}, store {self.store.path})")

    def close(self) -> None:
        self.device.close()


class ActorLatency(DeviceLatency):
    """`DeviceLatency` whose device lives in a `DeviceHost` actor: each batch is measured there
    (into its host's store) and merged into this process's store, where the scale decides
    what to reuse. Described as a local device is, so a search's state resumes under either
    executor."""

    def __init__(self, ray, name: str, store_path=None, protocol=None, device_options=None,
                 reference=None, remeasure=False, say=None):
        from latency_lab.measure.api import DeviceInfo
        from latency_lab.scaleout.base import ExecutorError
        from latency_lab.scaleout.device_actor import DeviceSpec, open_device_actor
        from latency_lab.paths import default_store_path
        from latency_lab.measure.protocol import Protocol
        from latency_lab.measure.store import Store

        self.ray, self.name, self.replay, self.progress = ray, name, False, None
        self.protocol = protocol or Protocol()
        self.store = Store(store_path or default_store_path())
        self.measurements, self.scaled = {}, {}
        spec = DeviceSpec(name, name, tuple(sorted((device_options or {}).items())))
        self.actor = open_device_actor(ray, spec)
        where = ray.get(self.actor.where.remote())
        if where.get("error"):
            self.close()
            raise ExecutorError(where["error"])
        self.host, self._info = where["host"], DeviceInfo.from_dict(where["device"])
        self.device = self      # what DeviceLatency asks of its device: info()
        self.scale = self._scale(reference, remeasure, say)

    def info(self):
        return self._info

    def _measure(self, points):
        from latency_lab.measure.store_merge import import_measurements

        ms, dump = self.ray.get(self.actor.measure.remote(list(points), self.protocol,
                                                          False, True))
        import_measurements(self.store, dump)
        return ms

    def close(self) -> None:
        from latency_lab.scaleout.device_actor import close_device_actor

        if getattr(self, "actor", None) is not None:
            close_device_actor(self.ray, self.actor)
            self.actor = None


def actor_latency(ray, name: str, store_path=None, protocol=None, device_options=None,
                  reference=None, remeasure=False, say=None):
    """A search's live latency source on its device's actor; None for a replay device
    (`table:`, `lut:`), which owns nothing and answers from its file in this process."""
    from latency_lab.measure.api import ReplayDevice, device_class, device_names

    head = name.partition(":")[0]
    if issubclass(device_class(head if head in device_names() else name), ReplayDevice):
        return None
    return ActorLatency(ray, name, store_path, protocol, device_options, reference, remeasure,
                        say)


__all__ = ["DeviceLatency", "ActorLatency", "actor_latency"]
