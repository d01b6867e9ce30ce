"""Replay devices: a recorded latency table (`table`) or a per-block LUT (`lut`) behind the
measurement API, so that everything that takes a device can run on a recording.

`TableDevice(path, context=None)` answers, for a network and resolution, with the recorded
median as one sample marked `summary_only` (the table holds no raw samples); a network or
resolution missing from the table is a `DeviceError` naming it, never a guess. Its context is
a replay context (name "table", the recorded hardware, runtime "table(<recorded runtime>)",
the recorded context key and the file's digest in `extra`), so that replayed figures stored by
a sweep are never taken for real measurements of the recorded device; `recorded_context` is
the recorded `DeviceInfo`.

`LutDevice(path)` answers with the LUT's prediction, also `summary_only` and marked
`predicted`. Its context is *not* the recorded device's (predictions are not measurements and
must never be stored under the real device's key): name "lut", the recorded hardware, runtime
"lut(<recorded runtime>)" and the recorded context key and LUT digest in `extra`.

Both can be named `table:PATH` / `lut:PATH` wherever a device name is taken.
"""

from __future__ import annotations

from latency_lab.measure import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.spec import NetworkSpec


def _replay_info(kind: str, c: DeviceInfo, path: str, digest: str | None = None) -> DeviceInfo:
    """The context of figures replayed from a file recorded in context `c`."""
    if digest is None:
        import hashlib

        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    return DeviceInfo(name=kind, hardware=c.hardware, runtime=f"{kind}({c.runtime})",
                      runtime_version=c.runtime_version, precision=c.precision,
                      threads=c.threads, affinity=c.affinity, batch_size=c.batch_size,
                      extra={f"{kind}_of_context": c.context_key, f"{kind}_sha256": digest[:16]})


class TableDevice(Device):
    name = "table"

    def __init__(self, path: str, context: str | None = None):
        from latency_lab.tables import TableError, load_table

        self.path = str(path)
        try:
            table = load_table(path)
            self.table = table.for_context(context) if context else table
            self.recorded_context = self.table.context  # refuses a mixed table without `context`
        except TableError as exc:
            raise DeviceError(str(exc)) from None
        self._info = _replay_info(self.name, self.recorded_context, path)

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
        self._info = _replay_info(self.name, self.lut.context, path, self.lut.sha256)

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
