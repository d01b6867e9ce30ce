"""Replay devices: a recorded latency table (`table`) or a per-block LUT (`lut`) behind the
measurement API, so that everything that takes a device, or a latency source, can run on a
recording. They are the one replay path: `--device table:PATH` in a sweep and `--latency
table:PATH` in a search (`latency_lab.search.sources`) both come here.

`TableDevice(path, context=None)` answers, for a network and resolution, with the recorded
measurement: median, 95% CI, sample count, std and percentiles as the table has them (stop
reason "replayed"; the table holds no raw samples, and none are invented). A network or
resolution missing from the table is a `DeviceError` naming it, never a guess. Its context is
a replay context (name "table", the recorded hardware, runtime "table(<recorded runtime>)",
the recorded context key and the file's digest in `extra`), so that replayed figures are
never taken for real measurements of the recorded device; `recorded_context` is the
recorded `DeviceInfo`.

`LutDevice(path)` answers with the LUT's prediction (stop reason "predicted", no samples of
its own: count 0, the CI the blocks' CIs added in quadrature and scaled like the sum, the
calibrated expected error in the facts). Its context is *not* the recorded device's
(predictions are not measurements and must never be stored under the real device's key):
name "lut", the recorded hardware, runtime "lut(<recorded runtime>)" and the recorded context
key and LUT digest in `extra`.
"""

from __future__ import annotations

import math

from latency_lab.measure.api import DeviceError, DeviceInfo, Measurement, ReplayDevice
from latency_lab.network.spec import NetworkSpec
from latency_lab.measure.stats import Stats

NAN = float("nan")


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


class TableDevice(ReplayDevice):
    name = "table"

    def __init__(self, path: str, context: str | None = None):
        from latency_lab.tables.latency_table import TableError, load_table

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

    def recorded(self, spec: NetworkSpec, resolution: int) -> Measurement:
        from latency_lab.tables.latency_table import TableError

        try:
            row = self.table.row(spec, resolution)
        except TableError as exc:
            raise DeviceError(str(exc)) from None
        stats = Stats(count=int(row.n_samples), min_ms=NAN, median_ms=row.latency_ms, mean_ms=NAN,
                      std_ms=row.std_ms, p5_ms=row.p5_ms, p95_ms=row.p95_ms,
                      ci_low_ms=row.ci_low_ms, ci_high_ms=row.ci_high_ms, confidence=0.95)
        return Measurement(context=self._info, network=spec.name, fingerprint=spec.fingerprint,
                           resolution=int(resolution), samples_ms=(), stop_reason="replayed",
                           recorded=stats,
                           facts={"replayed_from": self.path, "summary_only": True,
                                  "recorded_context": self.recorded_context.context_key,
                                  "recorded_at": row.measured_at})


class LutDevice(ReplayDevice):
    name = "lut"

    def __init__(self, path: str):
        from latency_lab.tables.lut import LutError
        from latency_lab.tables.lut_file import load_lut, lut_sha256

        self.path = str(path)
        try:
            self.lut = load_lut(path)
        except LutError as exc:
            raise DeviceError(str(exc)) from None
        self._info = _replay_info(self.name, self.lut.context, path, lut_sha256(self.lut))

    def info(self) -> DeviceInfo:
        return self._info

    def recorded(self, spec: NetworkSpec, resolution: int) -> Measurement:
        from latency_lab.tables.lut import LutError

        try:
            p = self.lut.predict(spec, resolution)
        except LutError as exc:
            raise DeviceError(str(exc)) from None
        half = self.lut.overhead.scale * p.blocks_ci_halfwidth_ms
        half = half if math.isfinite(half) else 0.0
        stats = Stats(count=0, min_ms=NAN, median_ms=p.latency_ms, mean_ms=NAN, std_ms=NAN,
                      p5_ms=NAN, p95_ms=NAN, ci_low_ms=p.latency_ms - half,
                      ci_high_ms=p.latency_ms + half, confidence=0.95)
        return Measurement(context=self._info, network=spec.name, fingerprint=spec.fingerprint,
                           resolution=int(resolution), samples_ms=(), stop_reason="predicted",
                           recorded=stats,
                           facts={"predicted": True, "summary_only": True, "lut": self.path,
                                  "sum_ms": p.sum_ms, "expected_error_pct": p.expected_error_pct})
