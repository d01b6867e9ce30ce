"""Latency sources: where a search reads the latency of a (network, resolution).

A source is parsed from the text a user gives on the command line (`parse_latency_source`):

- a device name (`cpu`, ...): measured live with `latency_lab.protocol.measure_points`
  through the SQLite `Store`, so a network asked for twice (in this search or an earlier
  one) is taken from the store instead of measured again;
- `table:PATH` / `lut:PATH`: the replay devices of the same names (`devices/table.py`), a
  recorded latency table or the per-block lookup-table predictor, read through the same
  `DeviceLatency` as a live device (no store: the recorded measurement, CI included, is the
  answer);
- `py:MODULE:FUNCTION`: `FUNCTION(network_dict) -> float ms`, MODULE imported with the
  current directory on the import path, the dict being the network's JSON form with its
  `resolution` set.

Every source answers `latency_ms(spec, resolution)`, may answer a batch at once
(`latency_many`, which a device uses to measure candidates interleaved), and `describe()`s
itself for result files. Values that are not finite positive numbers are refused.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from typing import Any, Callable, Sequence

from latency_lab.errors import UserError
from latency_lab.spec import NetworkSpec

Point = tuple[NetworkSpec, int]


class SourceError(UserError):
    """A latency source or evaluator that cannot be loaded or gave an unusable answer."""


class LatencySource:
    """Interface: the latency in ms of a network at a resolution."""

    batched = False  # True: the search calls latency_many once per iteration (e.g. a device)

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        raise NotImplementedError

    def latency_many(self, points: Sequence[Point]) -> list[float]:
        """Latencies of several points; sources that measure override this to batch."""
        return [self.latency_ms(spec, res) for spec, res in points]

    def describe(self) -> str:
        raise NotImplementedError

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
                positive: bool = True) -> float:
    """A finite float (and > 0 when `positive`), else a SourceError naming the network."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{what} returned {value!r} (not a number) for {spec.name} "
                          f"({spec.fingerprint}) at {resolution}") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise SourceError(f"{what} returned {x!r} for {spec.name} ({spec.fingerprint}) at "
                          f"{resolution}: need a finite{' positive' if positive else ''} number")
    return x


def load_py_callable(text: str) -> Callable[..., Any]:
    """`MODULE:FUNCTION` -> the function; the current directory is put on the import path."""
    module_name, sep, func_name = text.rpartition(":")
    if not sep or not module_name or not func_name:
        raise SourceError(f"py: source {text!r}: expected py:MODULE:FUNCTION")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceError(f"cannot import module {module_name!r} (from {cwd}): {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise SourceError(f"module {module_name!r} has no function {func_name!r}")
    return func


class PyLatency(LatencySource):
    """`py:MODULE:FUNCTION`: a Python function of the network's JSON dict, in ms."""

    def __init__(self, target: str):
        self.target = target
        self.func = load_py_callable(target)

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        try:
            value = self.func(network_dict(spec, resolution))
        except Exception as exc:  # the user's code: report it as one line, keep going no further
            raise SourceError(f"latency function py:{self.target} raised "
                              f"{type(exc).__name__}: {exc} for {spec.name} "
                              f"({spec.fingerprint}) at {resolution}") from exc
        return check_value(value, f"latency function py:{self.target}", spec, resolution)

    def describe(self) -> str:
        return f"py:{self.target}"


class DeviceLatency(LatencySource):
    """A live device: medians measured by the interleaved protocol, cached in the store."""

    batched = True   # the search hands over all candidates of an iteration at once

    def __init__(self, name: str, store_path=None, protocol=None, device_options=None,
                 progress=None):
        from latency_lab.measure import ReplayDevice, get_device
        from latency_lab.paths import default_store_path
        from latency_lab.protocol import Protocol
        from latency_lab.store import Store

        self.name = name
        self.device = get_device(name, **(device_options or {}))
        # a replay answers from its file: nothing is measured, so nothing goes to a store
        self.replay = isinstance(self.device, ReplayDevice)
        self.store = None if self.replay else Store(store_path or default_store_path())
        self.protocol = protocol or Protocol()
        self.progress = progress
        self.measurements: dict[tuple[str, int], Any] = {}

    def _measure(self, points: Sequence[Point]) -> list:
        """Measurements of the points (the protocol, on the device this process opened)."""
        from latency_lab.protocol import measure_points

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

    def describe(self) -> str:
        info = self.device.info()
        if self.replay:
            return f"{self.name} ({info.hardware}, {info.runtime}, context {info.context_key})"
        return (f"device {info.name} ({info.hardware}, {info.runtime} {info.runtime_version}, "
                f"context {info.context_key}, store {self.store.path})")

    def close(self) -> None:
        self.device.close()


def parse_latency_source(text: str, store_path=None, protocol=None, device_options=None,
                         progress=None, executor=None) -> LatencySource:
    """`table:PATH`, `lut:PATH`, `py:MODULE:FUNCTION`, or a device name. With an `executor`
    that owns devices (Ray), a live device is opened where it lives, by a device actor."""
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("py", "table", "lut") and not rest:
        raise SourceError(f"latency source {text!r} lacks its {'MODULE:FUNCTION' if kind == 'py' else 'PATH'}")
    if sep and kind == "py":
        return PyLatency(rest)
    if not text:
        raise SourceError("empty latency source; use a device name, table:PATH, lut:PATH or "
                          "py:MODULE:FUNCTION")
    remote = getattr(executor, "device_latency", None)
    if remote is not None:
        source = remote(text, store_path, protocol, device_options)
        if source is not None:
            return source
    return DeviceLatency(text, store_path, protocol, device_options, progress)


__all__ = ["LatencySource", "PyLatency", "DeviceLatency", "SourceError", "parse_latency_source",
           "load_py_callable", "network_dict", "check_value"]
