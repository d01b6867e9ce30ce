"""Replay devices: a recorded latency table (`table`) or a per-block LUT (`lut`) behind the
measurement API, so that everything that takes a device can run on a recording.

`TableDevice(path, context=None)` answers with the table's device context (`info()` is the
recorded `DeviceInfo`) and, for a network and resolution, the recorded median as one sample
marked `summary_only` (the table holds no raw samples); a network or resolution missing from
the table is a `DeviceError` naming it, never a guess.

`LutDevice(path)` answers with the LUT's prediction, also `summary_only` and marked
`predicted`. Its context is *not* the recorded device's (predictions are not measurements and
must never be stored under the real device's key): name "lut", the recorded hardware, runtime
"lut(<recorded runtime>)" and the recorded context key and LUT digest in `extra`.

Both can be named `table:PATH` / `lut:PATH` wherever a device name is taken.
"""

from __future__ import annotations

from latency_lab.measure import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.spec import NetworkSpec


class TableDevice(Device):
    name = "table"

    def __init__(self, path: str, context: str | None = None):
        from latency_lab.tables import TableError, load_table

        self.path = str(path)
        try:
            table = load_table(path)
            self.table = table.for_context(context) if context else table
            self._info = self.table.context   # refuses a mixed table without `context`
        except TableError as exc:
            raise DeviceError(str(exc)) from None

    def info(self) -> DeviceInfo:
        return self._info

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        from latency_lab.tables import TableError

        try:
            row = self.table.row(spec, resolution)
        except TableError as exc:
            raise DeviceError(str(exc)) from None
        return RunResult(samples_ms=(row.latency_ms,), summary_only=True,
                         facts={"replayed_from": self.path, "recorded_n_samples": row.n_samples,
                                "recorded_ci_ms": [row.ci_low_ms, row.ci_high_ms],
                                "recorded_at": row.measured_at})


class LutDevice(Device):
    name = "lut"

    def __init__(self, path: str):
        from latency_lab.lut import LutError, load_lut

        self.path = str(path)
        try:
            self.lut = load_lut(path)
        except LutError as exc:
            raise DeviceError(str(exc)) from None
        c = self.lut.context
        self._info = DeviceInfo(
            name=self.name, hardware=c.hardware, runtime=f"lut({c.runtime})",
            runtime_version=c.runtime_version, precision=c.precision, threads=c.threads,
            affinity=c.affinity, batch_size=c.batch_size,
            extra={"lut_of_context": c.context_key, "lut_sha256": self.lut.sha256[:16]})

    def info(self) -> DeviceInfo:
        return self._info

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        from latency_lab.lut import LutError

        try:
            p = self.lut.predict(spec, resolution)
        except LutError as exc:
            raise DeviceError(str(exc)) from None
        return RunResult(samples_ms=(p.latency_ms,), summary_only=True,
                         facts={"predicted": True, "lut": self.path, "sum_ms": p.sum_ms,
                                "expected_error_pct": p.expected_error_pct})
