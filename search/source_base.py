"""What every latency source is (`LatencySource`), its value checks, and the `py:` source.

Every source answers `latency_ms(spec, resolution)`, may answer a batch at once
(`latency_many`, which a device uses to measure candidates interleaved), `describe()`s itself
for result files and says, per point, where its latency came from (`provenance`: live,
reused, table, lut, lut-calibrated, py; with its CI and, for a live device, the factor that
put it on the search's scale). Values that are not finite positive numbers are refused.
The sources themselves: `sources.py` (parsing), `live_source.py` (a device, live or replayed),
`chain.py` (a fallback chain).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

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

    #: what `provenance` says by default: "py", "table", "lut" (a live device: "live" or
    #: "reused"; a chain: "lut-calibrated" for a LUT put on its table's scale)
    kind = "py"

    def provenance(self, spec: NetworkSpec, resolution: int) -> dict[str, Any]:
        """Where a latency this source returned came from, for trace.csv and summary.md:
        `provenance` (live, reused, table, lut, lut-calibrated, py), `ci_low_ms` /
        `ci_high_ms` (NaN where unknown), `scale_factor` and `scale_batch` (a live device's
        batch factor, else NaN / ''), and `detail` in words."""
        return provenance_record(self.kind, detail=self.detail(spec, resolution))

    def close(self) -> None:
        """Release what the source holds (a device); a closed source may be used again."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def provenance_record(kind: str, ci_low_ms: float = math.nan, ci_high_ms: float = math.nan,
                      scale_factor: float = math.nan, scale_batch: int | str = "",
                      detail: str = "", note: str = "") -> dict[str, Any]:
    """One point's provenance as `LatencySource.provenance` gives it."""
    return {"provenance": kind, "ci_low_ms": ci_low_ms, "ci_high_ms": ci_high_ms,
            "scale_factor": scale_factor, "scale_batch": scale_batch, "detail": detail,
            "note": note}


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
