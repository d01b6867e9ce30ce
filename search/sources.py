"""Latency sources: where a search reads the latency of a (network, resolution).

A source is parsed from the text a user gives on the command line (`parse_latency_source`):

- a device name (`cpu`, ...): measured live with `latency_lab.measure.protocol.measure_points`
  through the SQLite `Store`, so a network asked for twice (in this search or an earlier
  one) is taken from the store instead of measured again;
- `table:PATH` / `lut:PATH`: the replay devices of the same names (`devices/table.py`), a
  recorded latency table or the per-block lookup-table predictor, read through the same
  `DeviceLatency` as a live device (no store: the recorded measurement, CI included, is the
  answer);
- `py:MODULE:FUNCTION[,timeout=SECONDS]`: `FUNCTION(network_dict) -> float ms`, the user's own
  code, loaded alone (`search/pycall.py`: a file or a module of the current directory never
  shadows another import), the dict being the network's JSON form with its `resolution` set.

Every source answers `latency_ms(spec, resolution)`, may answer a batch at once
(`latency_many`, which a device uses to measure candidates interleaved), and `describe()`s
itself for result files. Values that are not finite positive numbers are refused.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from latency_lab.errors import UserError
from latency_lab.search.pycall import SourceError
from latency_lab.search.pyworker import PyFunction
from latency_lab.network.spec import NetworkSpec

Point = tuple[NetworkSpec, int]


class LatencySource:
    """Interface: the latency in ms of a network at a resolution."""

    batched = False  # True: the search calls latency_many once per iteration (e.g. a device)
    # True: answers from a file in microseconds (a replayed table or LUT), so the search need not
    # save its state after each answer (rbis.Cache.save)
    instant = False

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        raise NotImplementedError

    def latency_many(self, points: Sequence[Point]) -> list[float]:
        """Latencies of several points; sources that measure override this to batch."""
        return [self.latency_ms(spec, res) for spec, res in points]

    def describe(self) -> str:
        raise NotImplementedError

    def detail(self, spec: NetworkSpec, resolution: int) -> str:
        """How sure a latency this source returned is (CI, samples), for reports; '' if unknown."""
        return ""

    @property
    def label(self) -> str:
        """A short name: table, lut, py, or the device's name."""
        return self.describe()

    def device_parts(self) -> list[tuple[str, str]]:
        """(hardware, how: "live", "recorded table"...) of the latencies this source gives."""
        return [(self.label, "")]

    def device_label(self) -> str:
        """The hardware the latencies are of, in a few words (plot titles): "AMD EPYC (2
        logical CPUs, x86_64) (recorded table, recorded lut)"."""
        by_hw: dict[str, list[str]] = {}
        for hw, how in self.device_parts():
            by_hw.setdefault(hw, []).append(how)
        return " / ".join(hw + (f" ({', '.join(h for h in how if h)})" if any(how) else "")
                          for hw, how in by_hw.items())

    def origin(self, spec: NetworkSpec, resolution: int) -> str:
        """Which source answered for this point (a chain has several)."""
        return self.label

    def close(self) -> None:
        """Release what the source holds (a device); a closed source may be used again."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def network_dict(spec: NetworkSpec, resolution: int) -> dict[str, Any]:
    """The JSON form handed to `py:` functions: `spec.to_dict()` with `resolution` set."""
    return spec.with_resolution(int(resolution)).to_dict()


def check_value(value: Any, what: str, spec: NetworkSpec, resolution: int,
                positive: bool = True, bounds: tuple[float, float] | None = None) -> float:
    """A finite float (> 0 when `positive`, within `bounds` when given), else a SourceError
    naming the network. A bool or a string is refused: True is not 1 ms or 1%, and "76" is a
    function that returns the wrong thing."""
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{what} returned {value!r:.80} (not a number) for {spec.name} "
                          f"({spec.fingerprint}) at {resolution}") from None
    except OverflowError:      # an int such as 10**400: no float holds it
        raise SourceError(f"{what} returned an integer of {len(str(abs(value)))} digits for "
                          f"{spec.name} ({spec.fingerprint}) at {resolution}: need a finite "
                          "number") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise SourceError(f"{what} returned {x!r} for {spec.name} ({spec.fingerprint}) at "
                          f"{resolution}: need a finite{' positive' if positive else ''} number")
    if bounds and not bounds[0] <= x <= bounds[1]:
        raise SourceError(f"{what} returned {x!r} for {spec.name} ({spec.fingerprint}) at "
                          f"{resolution}: a top-1 accuracy in % lies in {bounds[0]:g}..{bounds[1]:g}")
    return x


def load_py_callable(text: str, label: str = "py:"):
    """`MODULE:FUNCTION[,timeout=SECONDS]` -> a `pyworker.PyFunction`, called as f(arg, about)."""
    return PyFunction(text, label)


class PyLatency(LatencySource):
    """`py:MODULE:FUNCTION`: a Python function of the network's JSON dict, in ms."""

    def __init__(self, target: str):
        self.target = target
        self.func = load_py_callable(target, f"latency function py:{target}")
        self.synthetic = self.func.synthetic

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        value = self.func(network_dict(spec, resolution),
                          f"{spec.name} ({spec.fingerprint}) at {resolution}")
        return check_value(value, f"latency function py:{self.target}", spec, resolution)

    def describe(self) -> str:
        return f"SYNTHETIC py:{self.target} ({self.synthetic})" if self.synthetic \
            else f"py:{self.target}"

    @property
    def label(self) -> str:
        return f"py:{self.target}"

    def close(self) -> None:
        self.func.close()


class DeviceLatency(LatencySource):
    """A live device: medians measured by the interleaved protocol, cached in the store."""

    batched = True   # the search hands over all candidates of an iteration at once

    def __init__(self, name: str, store_path=None, protocol=None, device_options=None,
                 progress=None):
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

    def _measure(self, points: Sequence[Point]) -> list:
        """Measurements of the points (the protocol, on the device this process opened)."""
        from latency_lab.measure.protocol import measure_points

        return measure_points(self.device, points, self.store, self.protocol,
                              progress=self.progress)

    def latency_many(self, points: Sequence[Point]) -> list[float]:
        todo = [(s, int(r)) for s, r in points if (s.fingerprint, int(r)) not in self.measurements]
        if todo:
            done = self._measure(todo)
            missing = [m for m in done if not m.measured]
            if missing:
                raise SourceError(f"the time cap ({self.protocol.time_cap_s:g} s) came before "
                                  f"{len(missing)} of {len(done)} networks were measured on "
                                  f"{self.name} (the first: {missing[0].network} at "
                                  f"{missing[0].resolution}); what was measured is in the store "
                                  f"{self.store.path}: run again to go on")
            for m in done:
                self.measurements[(m.fingerprint, m.resolution)] = m
        return [self.measurements[(s.fingerprint, int(r))].latency_ms for s, r in points]

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


class ChainSource(LatencySource):
    """Sources tried in order for each point: what the first lacks (a network a table has no
    row for, a block a LUT never measured) is asked of the next, e.g. a recorded table, then
    a LUT, then a live device. Which one answered each point is kept (`origin`: the search's
    trace.csv column `latency_from`), and how often each was passed over (`misses`)."""

    def __init__(self, sources: Sequence[LatencySource]):
        self.sources = list(sources)
        self.batched = any(s.batched for s in self.sources)
        self.instant = all(s.instant for s in self.sources)
        self.answered: dict[tuple[str, int], int] = {}
        self.misses = [0] * len(self.sources)
        self.first_miss: dict[int, str] = {}

    def latency_many(self, points: Sequence[Point]) -> list[float]:
        out: list[float | None] = [None] * len(points)
        todo, reasons = list(range(len(points))), {}
        for n, src in enumerate(self.sources):
            if not todo:
                break
            if src.batched and not getattr(src, "replay", False):
                # a live device measures what is left, interleaved, and has it all
                for i, v in zip(todo, src.latency_many([points[i] for i in todo])):
                    out[i] = v
                    self.answered[(points[i][0].fingerprint, int(points[i][1]))] = n
                todo = []
                break
            rest = []
            for i in todo:
                spec, res = points[i]
                try:
                    out[i] = src.latency_ms(spec, res)
                    self.answered[(spec.fingerprint, int(res))] = n
                except UserError as exc:     # not covered here: ask the next source
                    rest.append(i)
                    self.misses[n] += 1
                    self.first_miss.setdefault(n, str(exc))
                    reasons.setdefault(i, []).append(f"{src.describe()}: {exc}")
            todo = rest
        if todo:
            spec, res = points[todo[0]]
            raise SourceError(f"no latency source has {spec.name} ({spec.fingerprint}) at "
                              f"{res}: " + "; ".join(reasons.get(todo[0], [])))
        return out

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        return self.latency_many([(spec, resolution)])[0]

    def _source(self, spec: NetworkSpec, resolution: int) -> LatencySource | None:
        n = self.answered.get((spec.fingerprint, int(resolution)))
        return None if n is None else self.sources[n]

    def origin(self, spec: NetworkSpec, resolution: int) -> str:
        src = self._source(spec, resolution)
        return src.origin(spec, resolution) if src else ""

    def detail(self, spec: NetworkSpec, resolution: int) -> str:
        src = self._source(spec, resolution)
        return src.detail(spec, resolution) if src else ""

    def describe(self) -> str:
        return " else ".join(s.describe() for s in self.sources)

    def device_parts(self) -> list[tuple[str, str]]:
        return [p for s in self.sources for p in s.device_parts()]

    def report(self) -> str:
        """How many points each source answered and missed, in words."""
        counts = [0] * len(self.sources)
        for n in self.answered.values():
            counts[n] += 1
        parts = [f"{s.label} answered {c}" + (f", lacked {m} (first: {self.first_miss[k]})" if m else "")
                 for k, (s, c, m) in enumerate(zip(self.sources, counts, self.misses))]
        return "latency sources: " + "; ".join(parts)

    def close(self) -> None:
        for s in self.sources:
            s.close()


def parse_latency_sources(texts: Sequence[str], **kw) -> LatencySource:
    """One source, or a `ChainSource` of several tried in order (e.g. table, lut, device)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise SourceError("no latency source given")
    if len(texts) == 1:
        return parse_latency_source(texts[0], **kw)
    devices = [t for t in texts if t.split(":")[0] not in ("py", "table", "lut")]
    if devices and texts[-1] not in devices or len(devices) > 1:
        raise SourceError("a device can only be the last latency source of a chain (it has "
                          "every network, measuring what the recordings lack)")
    return ChainSource([parse_latency_source(t, **kw) for t in texts])


def parse_latency_source(text: str, store_path=None, protocol=None, device_options=None,
                         progress=None, executor=None) -> LatencySource:
    """`table:PATH`, `lut:PATH`, `py:MODULE:FUNCTION`, or a device name. With an `executor`
    that owns devices (Ray), a live device is opened where it lives, by a device actor."""
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("py", "table", "lut") and not rest:
        what = "MODULE:FUNCTION" if kind == "py" else "PATH"
        raise SourceError(f"latency source {text!r} lacks its {what}")
    if sep and kind == "py":
        return PyLatency(rest)
    if not text:
        raise SourceError("empty latency source; use a device name, table:PATH, lut:PATH or "
                          "py:MODULE:FUNCTION")
    ray = getattr(executor, "ray", None)     # a RayExecutor: its devices live in actors
    if ray is not None:
        source = actor_latency(ray, text, store_path, protocol, device_options)
        if source is not None:
            return source
    return DeviceLatency(text, store_path, protocol, device_options, progress)


class ActorLatency(DeviceLatency):
    """`DeviceLatency` whose device lives in a `DeviceHost` actor: each batch is measured there
    (into its host's store) and merged into this process's store. Described as a local
    device is, so a search's state resumes under either executor."""

    def __init__(self, ray, name: str, store_path=None, protocol=None, device_options=None):
        from latency_lab.measure.api import DeviceInfo
        from latency_lab.scaleout.base import ExecutorError
        from latency_lab.scaleout.device_actor import DeviceSpec, open_device_actor
        from latency_lab.paths import default_store_path
        from latency_lab.measure.protocol import Protocol
        from latency_lab.measure.store import Store

        self.ray, self.name, self.replay, self.progress = ray, name, False, None
        self.protocol = protocol or Protocol()
        self.store = Store(store_path or default_store_path())
        self.measurements = {}
        spec = DeviceSpec(name, name, tuple(sorted((device_options or {}).items())))
        self.actor = open_device_actor(ray, spec)
        where = ray.get(self.actor.where.remote())
        if where.get("error"):
            self.close()
            raise ExecutorError(where["error"])
        self.host, self._info = where["host"], DeviceInfo.from_dict(where["device"])
        self.device = self      # what DeviceLatency asks of its device: info()

    def info(self):
        return self._info

    def _measure(self, points):
        from latency_lab.measure.store_merge import import_measurements

        ms, dump = self.ray.get(self.actor.measure.remote(list(points), self.protocol))
        import_measurements(self.store, dump)
        return ms

    def close(self) -> None:
        from latency_lab.scaleout.device_actor import close_device_actor

        if self.actor is not None:
            close_device_actor(self.ray, self.actor)
            self.actor = None


def actor_latency(ray, name: str, store_path=None, protocol=None, device_options=None):
    """A search's live latency source on its device's actor; None for a replay device
    (`table:`, `lut:`), which owns nothing and answers from its file in this process."""
    from latency_lab.measure.api import ReplayDevice, device_class, device_names

    head = name.partition(":")[0]
    if issubclass(device_class(head if head in device_names() else name), ReplayDevice):
        return None
    return ActorLatency(ray, name, store_path, protocol, device_options)


__all__ = ["LatencySource", "PyLatency", "DeviceLatency", "ChainSource", "SourceError",
           "parse_latency_source", "parse_latency_sources", "ActorLatency", "actor_latency",
           "load_py_callable", "network_dict", "check_value"]
