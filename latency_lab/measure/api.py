"""The measurement API: what a device is, what it returns, and how drivers are found.

A driver (in `devices/`) is a `Device`: it describes itself (`info()`, a `DeviceInfo` whose
fields are everything that changes a latency) and runs a network at a resolution
(`sample()`, raw per-inference latencies in ms). Drivers only measure; *how often* and *in
which order* is the protocol's business (`protocol.py`), persistence the store's (`store.py`).

A `Measurement` is what a user keeps: the raw samples, their statistics, how they were taken
and why sampling stopped.

Drivers are found by name (`get_device("cpu")`): the shipped ones from the one list in
`latency_lab.devices.DRIVERS`, others through the `latency_lab.devices` entry-point group, so
a third-party package adds a device by declaring, in its pyproject.toml::

    [project.entry-points."latency_lab.devices"]
    mydev = "my_package.module:MyDevice"

`module:Class` may also be given directly in place of a name, and `NAME:PATH` for a registered
driver that replays a file (`table:results/cpu/table.csv`, `lut:results/cpu/lut.json`) passes
PATH as its `path` option.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, Mapping

from latency_lab.errors import UserError
from latency_lab.network.spec import NetworkSpec
from latency_lab.measure.stats import Stats, summarize

ENTRY_POINT_GROUP = "latency_lab.devices"


class DeviceError(UserError):
    """A device that cannot be found, opened or run; the message is for the user."""


@dataclass(frozen=True)
class DeviceInfo:
    """Everything about how latencies are taken that can change them.

    `context_key` hashes these fields: measurements with equal keys are comparable and share
    cache entries. Facts that are observed per measurement rather than configured (thermal
    state, clock readings during the run) belong in `Measurement.facts`, not here.
    """

    name: str                 # registry name: "cpu", "pixel2", "cuda", "jetson", "table"
    hardware: str             # "Intel Xeon @ 2.1GHz x2", "Pixel 2", "NVIDIA GeForce RTX 3090"
    runtime: str              # "litert", "tflite-benchmark", "torch-cuda", "tensorrt"
    runtime_version: str
    precision: str = "fp32"   # "fp32", "fp16", "int8"
    threads: int | None = None
    affinity: str = ""        # CPU set or mask the runs are pinned to; "" when not pinned
    batch_size: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)  # delegate, governor, power mode...

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra"] = dict(sorted(self.extra.items()))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeviceInfo":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    @cached_property
    def context_key(self) -> str:
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return f"{self.name}-{hashlib.sha256(canon.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class RunResult:
    """What one `Device.sample` call returns."""

    samples_ms: tuple[float, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)   # observed during the call
    summary_only: bool = False  # True when the device reported only a summary, not per-run times


@dataclass(frozen=True)
class Measurement:
    """A network at a resolution on a device: raw samples, statistics, context."""

    context: DeviceInfo
    network: str
    fingerprint: str
    resolution: int
    samples_ms: tuple[float, ...]
    rounds: tuple[int, ...] = ()          # round index of each sample (see protocol.py)
    stop_reason: str = ""                 # "ci_target", "time_cap", "max_rounds", "replayed"
    facts: Mapping[str, Any] = field(default_factory=dict)
    confidence: float = 0.95
    drift: tuple[float, ...] = ()         # machine-drift factor of each sample's visit, or ()
    recorded: Stats | None = None         # a replay's statistics as recorded (no samples here)
    reused: bool = False                  # taken from the store as it was, not measured now
    taken: tuple[float, float] | None = None   # unix times of the first and last sample
    times: tuple[float, ...] = ()         # unix time of each sample's visit (the store's)
    load: tuple[float, float] | None = None    # host's 1-min load average: lowest, highest visit
    measurement_id: int | None = None     # its row in the store it came from

    def conditions(self) -> str:
        """When and how it was measured, in words: 'measured 2026-11-20 14:02-14:09 UTC, 8
        rounds, 64 samples, CI +-0.8%, load 0.9-1.2' (what a reused latency says)."""
        import time as _time

        parts = []
        if self.taken:
            day = _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(self.taken[0]))
            parts.append(f"measured {day}-{_time.strftime('%H:%M', _time.gmtime(self.taken[1]))}"
                         " UTC")
        s = self.stats
        parts.append(f"{self.n_rounds} rounds, {s.count} samples, CI +-"
                     f"{100 * s.ci_halfwidth_rel:.1f}%")
        parts.append(f"load {self.load[0]:.1f}-{self.load[1]:.1f}" if self.load
                     else "load not recorded")
        return ", ".join(parts)

    @cached_property
    def stats(self) -> Stats:
        """Statistics of the drift-corrected samples (the raw ones when there is no drift);
        a replayed measurement's recorded statistics."""
        if self.recorded is not None:
            return self.recorded
        if not self.samples_ms:
            return NO_SAMPLES
        samples = self.samples_ms
        if self.drift:
            samples = tuple(s / d for s, d in zip(self.samples_ms, self.drift))
        return summarize(samples, self.rounds or None, self.confidence)

    def corrected_samples(self) -> tuple[float, ...]:
        """The samples divided by their visits' machine-drift factors (raw where none)."""
        if not self.drift:
            return self.samples_ms
        return tuple(s / d for s, d in zip(self.samples_ms, self.drift))

    @cached_property
    def raw_stats(self) -> Stats:
        if self.recorded is not None:
            return self.recorded
        if not self.samples_ms:
            return NO_SAMPLES
        return summarize(self.samples_ms, self.rounds or None, self.confidence)

    @property
    def latency_ms(self) -> float:
        """The headline figure: the median (drift-corrected when the run allowed it)."""
        return self.stats.median_ms

    @property
    def n_rounds(self) -> int:
        return len(set(self.rounds))

    @property
    def measured(self) -> bool:
        """False for a point the protocol never reached (time cap, interruption): no samples,
        no figures (NaN), but a row in the report with its stop reason."""
        return bool(self.samples_ms) or self.recorded is not None

    def row(self) -> dict[str, Any]:
        """A flat record for CSV reports (one row per resolution)."""
        s = self.stats
        c = self.context
        return {
            "resolution": self.resolution,
            "latency_ms": s.median_ms,
            "ci_low_ms": s.ci_low_ms,
            "ci_high_ms": s.ci_high_ms,
            "n_samples": s.count,
            "n_rounds": self.n_rounds,
            "min_ms": s.min_ms,
            "mean_ms": s.mean_ms,
            "std_ms": s.std_ms,
            "p5_ms": s.p5_ms,
            "p95_ms": s.p95_ms,
            "ci_halfwidth_pct": 100 * s.ci_halfwidth_rel,
            "load_min": self.load[0] if self.load else float("nan"),
            "load_max": self.load[1] if self.load else float("nan"),
            "measured_at": _iso(self.taken[1]) if self.taken else "",
            "reused": self.reused,
            "raw_median_ms": self.raw_stats.median_ms if self.drift else s.median_ms,
            "drift_corrected": bool(self.drift),
            "stop_reason": self.stop_reason,
            "network": self.network,
            "fingerprint": self.fingerprint,
            "device": c.name,
            "hardware": c.hardware,
            "runtime": c.runtime,
            "runtime_version": c.runtime_version,
            "precision": c.precision,
            "threads": c.threads,
            "affinity": c.affinity,
            "batch_size": c.batch_size,
            "extra": json.dumps(dict(sorted(c.extra.items())), sort_keys=True, default=str),
            "context_key": c.context_key,
            # from the driver's facts: samples that are per-invocation averages, not single
            # runs (a phone binary that reports only summaries), and throttling episodes
            # after which the point was cooled down and measured again
            "summary_only": bool(self.facts.get("summary_only", False)),
            "throttle_events": int(self.facts.get("throttle_events", 0)),
            # the point's one-time set-up in the process that measured it (Device.setup:
            # e.g. cuDNN autotuning, warm-up and graph capture of a new input shape)
            "setup_s": self.facts.get("setup_s", float("nan")),
            # facts a driver reports about how it ran (the cuda driver's CUDA-graph and
            # launch-bound check), as columns only where the driver reports them
            **{k: self.facts[k] for k in REPORTED_FACTS if k in self.facts},
        }


def _iso(t: float) -> str:
    import time as _time

    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(t))


# Driver facts that become report columns (see Measurement.row).
REPORTED_FACTS = ("execution", "launch_bound", "eager_ms", "graph_ms", "eager_over_graph",
                  "delegate_applied")
NO_SAMPLES = Stats(count=0, min_ms=float("nan"), median_ms=float("nan"), mean_ms=float("nan"),
                   std_ms=float("nan"), p5_ms=float("nan"), p95_ms=float("nan"),
                   ci_low_ms=float("nan"), ci_high_ms=float("nan"), confidence=0.95)


class Device(ABC):
    """A driver: describes itself and runs networks. Subclasses only measure."""

    #: registry name of the driver
    name: str = ""
    #: whether the driver needs a GPU of its own (a Ray actor or a worker is given one)
    needs_gpu: bool = False
    #: optional extras it needs (latency_lab.extras): checked by `get_device` in one line
    extras: tuple[str, ...] = ()
    #: unrecorded runs a visit needs after the device ran the same network at another
    #: resolution (a protocol's `warmup_per_visit` overrides it; after another network: 1):
    #: 1 unless the driver measured that it buys nothing
    warmup_after_switch: int = 1

    @abstractmethod
    def info(self) -> DeviceInfo:
        """The context measurements are taken in (cheap; may query the device once)."""

    @abstractmethod
    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        """Run `spec` at `resolution` `warmup_runs` times unrecorded, then `runs` times, and
        return the per-run latencies in ms. Preparing the network (conversion, upload, engine
        build) happens on first use and is cached by the driver, never counted in samples."""

    def prepare(self, spec: NetworkSpec, resolutions: list[int]) -> None:
        """Optional: do expensive per-network work up front (called once per sweep)."""

    def setup(self, spec: NetworkSpec, resolution: int) -> Mapping[str, Any] | None:
        """Optional: the one-time set-up of a point in this process, before its first visit
        (a GPU driver allocates the input, autotunes and warms up the shape, captures a graph).
        The protocol times it (the `setup_s` column), shows it while it happens and keeps
        the time cap between it and the next visit; it may return facts about the set-up.
        `sample` must still work without it (it then sets up on first use)."""
        return None

    def close(self) -> None:
        """Release models, interpreters, connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReplayDevice(Device):
    """A device that answers from a recording (a latency table, a per-block LUT) instead of
    running anything: the one replay path, whether it is named as a device (`--device
    table:PATH`) or as a search's latency source (`--latency table:PATH`).

    A recorded figure is not a sample. `recorded` gives the recorded `Measurement` (median,
    CI and sample count as recorded, stop reason "replayed" or "predicted"), which the
    protocol returns as it is instead of sampling a constant again and again and storing
    copies of it; `sample` gives the recorded median as one summary-only sample, for callers
    of the plain Device API."""

    @abstractmethod
    def recorded(self, spec: NetworkSpec, resolution: int) -> Measurement:
        """The recorded measurement of `spec` at `resolution`; a DeviceError naming what is
        missing when the recording lacks it."""

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        m = self.recorded(spec, resolution)
        return RunResult(samples_ms=(m.latency_ms,), facts=dict(m.facts), summary_only=True)


def _load(target: str):
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise DeviceError(f"cannot load device driver {target!r}: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, Device)):
        raise DeviceError(f"{target!r} is not a device driver (a subclass of "
                          f"latency_lab.measure.api.Device)")
    return obj


def _builtin() -> dict[str, str]:
    from latency_lab.devices import DRIVERS   # the one list of shipped drivers (strings only)

    return DRIVERS


def device_names() -> list[str]:
    names = set(_builtin())
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def device_class(name: str) -> type[Device]:
    """The driver class registered as `name` (entry point or built-in), or a `module:Class`."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _load(ep.value)
    if name in _builtin():
        return _load(_builtin()[name])
    if ":" in name:
        return _load(name)
    raise DeviceError(f"unknown device {name!r}; known: {', '.join(device_names())}")


def parse_device_options(items: list[str], **flags: Any) -> dict[str, Any]:
    """['adb_port=5038', 'builder=keras'] (the CLI's -O) -> {'adb_port': '5038', ...}, plus
    the options that have a flag of their own (--threads, ...) where given; `get_device`
    converts the text to the driver's types. A key given twice is refused."""
    options: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise DeviceError(f"malformed --device-option {item!r}: use KEY=VALUE")
        if key in options:
            raise DeviceError(f"device option {key!r} given twice")
        options[key] = value
    for key, value in flags.items():
        if value is not None and key in options:
            raise DeviceError(f"give --{key} or -O {key}=..., not both")
        if value is not None:
            options[key] = value
    return options


def get_device(name: str, **options: Any) -> Device:
    """An opened driver. `options` are the driver's keyword arguments (threads=..., ...); text
    values (`-O KEY=VALUE`) are converted to the types the driver's signature declares
    (`driver_options`), options given as None are left to the driver's defaults."""
    head, sep, arg = name.partition(":")
    if sep and head in device_names():   # "table:PATH", "lut:PATH"
        if options.get("path") is not None:
            raise DeviceError(f"device {name!r} names its file; do not give path= as well")
        name, options = head, {**options, "path": arg}
    cls = device_class(name)
    if getattr(cls, "extras", ()):    # before its options are read or anything is opened
        from latency_lab.extras import require

        require(f"--device {name}", *cls.extras)
    return cls(**driver_options(cls, {k: v for k, v in options.items() if v is not None}, name))


def driver_options(cls: type, options: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """`options` checked against `cls.__init__`'s parameters and converted to their annotated
    types: text such as "4", "0.5", "true"/"off", "none" becomes int, float, bool or None
    where the annotation says so. An unknown key or a value that does not convert is a
    DeviceError naming the option, what it expects and, for an unknown key, the options there
    are. Values that are not text pass unchanged.

    Drivers declare their options once, as typed keyword arguments; this is the one place
    that turns command-line text into them (no driver parses its own options)."""
    name = name or getattr(cls, "name", "") or cls.__name__
    params, hints, var_kw = _parameters(cls)
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in params and not var_kw:
            known = ", ".join(sorted(k for k in params if _settable(hints.get(k)))) or "none"
            raise DeviceError(f"device {name!r} has no option {key!r}; its options: {known}")
        hint = hints.get(key)
        if isinstance(value, str) and hint is not None:
            try:
                value = _convert(value, hint)
            except ValueError:
                raise DeviceError(f"device {name!r} option {key}={value!r}: expected "
                                  f"{_describe(hint)}") from None
        out[key] = value
    return out


def _parameters(cls: type) -> tuple[list[str], dict[str, Any], bool]:
    """Keyword parameters of the driver's constructor, their resolved annotations, and
    whether it takes **kwargs."""
    sig = inspect.signature(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: convert nothing, check names only
        hints = {}
    params = [p.name for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return params, {k: hints[k] for k in params if k in hints}, var_kw


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_TEXT_TYPES = {bool: "true or false", int: "an integer", float: "a number", str: "text",
               Any: "text"}


def _members(hint: Any) -> tuple[list[Any], bool]:
    """The types a hint allows (a union's members without None) and whether None is one."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def _convert(text: str, hint: Any) -> Any:
    """`text` as a value of type `hint` (raises ValueError when it is not one)."""
    members, optional = _members(hint)
    if optional and text.strip().lower() in ("", "none"):
        return None
    if str in members or Any in members:
        return text
    low = text.strip().lower()
    for t in members:
        if t is bool and (low in _TRUE or low in _FALSE):
            return low in _TRUE
        if t in (int, float):
            try:
                return t(text.strip())
            except ValueError:
                pass
    raise ValueError(text)  # a callable, a class: not something text can give


def _settable(hint: Any) -> bool:
    """Whether text can give a value of this type (a callable hook cannot)."""
    return hint is None or all(t in _TEXT_TYPES for t in _members(hint)[0])


def _describe(hint: Any) -> str:
    members, optional = _members(hint)
    words = [_TEXT_TYPES.get(t, f"a {getattr(t, '__name__', t)}") for t in members]
    return " or ".join(words + (["none"] if optional else []))
