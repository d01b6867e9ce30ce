"""Latency tables: recorded latencies as a file a user can keep, share and search against.

One row per (device context, network fingerprint, resolution), the same columns whatever the
device (`COLUMNS`): the context's key and `DeviceInfo` fields (`extra` as JSON), the network's
name, fingerprint and architecture JSON, the resolution, the median latency with its CI, sample
count and spread, when it was measured, whether the row came from raw samples in the exporting
store ("measured") or from an earlier import ("imported"), and `format_version` on every row.
CSV always; Parquet when pyarrow is importable (chosen by the file suffix).

`export_table(store, path)` writes a table from the SQLite store; `import_table(path, store)`
reads one into the store's `imported` rows (a table has no raw samples, so none are made up);
`load_table(path)` returns a `LatencyTable` whose `latency_ms(spec, resolution)` is the recorded
figure or a `TableError` naming what is missing.

Loading validates everything and trusts nothing: missing columns, empty or non-numeric fields
(a truncated file), a network JSON whose fingerprint differs from the fingerprint column or
context fields that do not hash to the context key (a hand-edited file), duplicate keys, and a
table mixing device contexts or from another context where one is required are refused with
a message naming the row and the problem. Files are parsed as data only (CSV/Parquet readers,
`json.loads`); nothing is unpickled or evaluated.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from latency_lab.errors import UserError
from latency_lab.fileio import atomic_path, parse_json
from latency_lab.measure.api import DeviceInfo
from latency_lab.network.spec import NetworkSpec, SpecError, check_resolution

FORMAT_VERSION = 1
CONTEXT_COLUMNS = ("context_key", "device", "hardware", "runtime", "runtime_version",
                   "precision", "threads", "affinity", "batch_size", "extra")
STAT_COLUMNS = ("latency_ms", "ci_low_ms", "ci_high_ms", "n_samples", "std_ms", "p5_ms",
                "p95_ms")
COLUMNS = ("format_version",) + CONTEXT_COLUMNS + ("network", "fingerprint", "resolution") \
    + STAT_COLUMNS + ("measured_at", "origin", "network_json")
OPTIONAL_NUMBERS = ("std_ms", "p5_ms", "p95_ms")   # may be empty; numbers when present


class TableError(UserError):
    """A latency table that cannot be used, or a lookup it cannot answer."""


@dataclass(frozen=True)
class TableRow:
    context: DeviceInfo
    network: str
    spec: NetworkSpec
    resolution: int
    latency_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n_samples: int
    std_ms: float
    p5_ms: float
    p95_ms: float
    measured_at: str
    origin: str = "measured"

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.context.context_key, self.spec.fingerprint, self.resolution)

    def record(self) -> dict[str, Any]:
        c = self.context
        return {
            "format_version": FORMAT_VERSION,
            "context_key": c.context_key, "device": c.name, "hardware": c.hardware,
            "runtime": c.runtime, "runtime_version": c.runtime_version,
            "precision": c.precision, "threads": c.threads, "affinity": c.affinity,
            "batch_size": c.batch_size,
            "extra": json.dumps(dict(sorted(c.extra.items())), sort_keys=True, default=str),
            "network": self.network, "fingerprint": self.spec.fingerprint,
            "resolution": self.resolution,
            "latency_ms": self.latency_ms, "ci_low_ms": self.ci_low_ms,
            "ci_high_ms": self.ci_high_ms, "n_samples": self.n_samples, "std_ms": self.std_ms,
            "p5_ms": self.p5_ms, "p95_ms": self.p95_ms, "measured_at": self.measured_at,
            "origin": self.origin,
            "network_json": json.dumps(self.spec.arch_dict(), sort_keys=True,
                                       separators=(",", ":")),
        }


def describe_context(c: DeviceInfo) -> str:
    threads = f", {c.threads} thread(s)" if c.threads else ""
    return (f"{c.context_key} ({c.name}, {c.hardware}, {c.runtime} {c.runtime_version}, "
            f"{c.precision}{threads}, batch {c.batch_size})")


class LatencyTable:
    """Validated rows of a latency table, looked up by (network fingerprint, resolution)."""

    def __init__(self, rows: Iterable[TableRow], source: str = ""):
        self.rows = list(rows)
        self.source = source
        self.contexts: dict[str, DeviceInfo] = {}
        self._by_key: dict[tuple[str, str, int], TableRow] = {}
        # for the messages of a miss, which a chain of sources (table, then LUT) meets often
        self._by_fp: dict[str, list[int]] = {}
        for r in self.rows:
            self.contexts.setdefault(r.context.context_key, r.context)
            self._by_key[r.key] = r
            self._by_fp.setdefault(r.spec.fingerprint, []).append(r.resolution)
        self._networks: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def _name(self) -> str:
        return f"table {self.source}" if self.source else "table"

    @property
    def context(self) -> DeviceInfo:
        """The table's one device context; TableError if it has none or mixes several."""
        if not self.contexts:
            raise TableError(f"{self._name} has no rows")
        if len(self.contexts) > 1:
            raise TableError(f"{self._name} mixes {len(self.contexts)} device contexts ("
                             + "; ".join(describe_context(c) for c in self.contexts.values())
                             + "); choose one (context key or device name)")
        return next(iter(self.contexts.values()))

    def for_context(self, context: DeviceInfo | str) -> "LatencyTable":
        """The rows of one context: a DeviceInfo, a context key (or its prefix) or a device
        name that names exactly one context of the table."""
        keys = _match_contexts(self.contexts, context)
        if not keys:
            want = context.context_key if isinstance(context, DeviceInfo) else context
            raise TableError(f"{self._name} has no rows for device context {want}; it has: "
                             + ("; ".join(describe_context(c) for c in self.contexts.values())
                                or "nothing"))
        if len(keys) > 1:
            raise TableError(f"{context!r} names {len(keys)} contexts of {self._name}: "
                             f"{', '.join(keys)}; give a context key")
        return LatencyTable([r for r in self.rows if r.context.context_key == keys[0]],
                            self.source)

    def require_context(self, context: DeviceInfo | str) -> "LatencyTable":
        """Refuse the table unless all of it is from `context` (e.g. to search for a device)."""
        want = context.context_key if isinstance(context, DeviceInfo) else str(context)
        own = self.context  # raises on a mixed or empty table
        if own.context_key != want:
            raise TableError(f"{self._name} is from another device context: "
                             f"{describe_context(own)}, not {want}")
        return self

    def row(self, spec: NetworkSpec, resolution: int) -> TableRow:
        ctx = self.context.context_key
        found = self._by_key.get((ctx, spec.fingerprint, int(resolution)))
        if found is not None:
            return found
        have = sorted(self._by_fp.get(spec.fingerprint, ()))
        if have:
            raise TableError(f"{self._name} has no latency for network {spec.name} (fingerprint "
                             f"{spec.fingerprint}) at resolution {int(resolution)}; it has this "
                             f"network at resolutions {', '.join(map(str, have))}")
        if self._networks is None:
            nets = sorted({f"{r.network} ({r.spec.fingerprint})" for r in self.rows})
            self._networks = ", ".join(nets[:8]) + (f" and {len(nets) - 8} more"
                                                    if len(nets) > 8 else "")
        shown = self._networks
        raise TableError(f"{self._name} has no rows for network {spec.name} (fingerprint "
                         f"{spec.fingerprint}) at any resolution; networks in it: {shown}")

    def latency_ms(self, spec: NetworkSpec, resolution: int) -> float:
        return self.row(spec, resolution).latency_ms

    def records(self) -> list[dict[str, Any]]:
        return [r.record() for r in self.rows]


def _match_contexts(contexts: dict[str, DeviceInfo], context: DeviceInfo | str) -> list[str]:
    if isinstance(context, DeviceInfo):
        return [context.context_key] if context.context_key in contexts else []
    exact = [k for k in contexts if k == context]
    if exact:
        return exact
    return [k for k, c in contexts.items() if k.startswith(context) or c.name == context]


# -- reading -------------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and
                                                                      v.strip() == "")


def _number(v: Any, column: str, line: str, optional: bool = False) -> float:
    if _missing(v):
        if optional:
            return float("nan")
        raise TableError(f"{line}: {column} is empty (truncated or hand-edited file?)")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TableError(f"{line}: {column} {v!r} is not a number") from None
    if not math.isfinite(x):
        raise TableError(f"{line}: {column} {v!r} is not a finite number")
    return x


def _integer(v: Any, column: str, line: str) -> int:
    x = _number(v, column, line)
    if not x.is_integer():
        raise TableError(f"{line}: {column} {v!r} is not a whole number")
    return int(x)


def _text(v: Any) -> str:
    return "" if _missing(v) else str(v)


_DEVICE_FIELDS = ("device", "hardware", "runtime", "runtime_version", "precision", "threads",
                  "affinity", "batch_size", "extra", "context_key")


def _parse_row(rec: dict[str, Any], line: str, memo: dict | None = None) -> TableRow:
    """One row, every field checked. `memo` (one per file) keeps the device context and the
    network of rows already parsed, keyed by their exact text: a table has a few contexts
    and networks over many rows (325 rows, 65 networks: 0.3 s to 0.1 s)."""
    version = _integer(rec["format_version"], "format_version", line)
    if version != FORMAT_VERSION:
        raise TableError(f"{line}: format_version {version}; this tool reads {FORMAT_VERSION}")
    memo = {} if memo is None else memo
    dkey = ("device",) + tuple(str(rec[k]) for k in _DEVICE_FIELDS)
    info = memo.get(dkey)
    if info is None:
        info = memo[dkey] = _parse_context(rec, line)
    fingerprint = _text(rec["fingerprint"])
    nkey = ("network", str(rec["network"]), str(rec["network_json"]), fingerprint)
    spec = memo.get(nkey)
    if spec is None:
        spec = memo[nkey] = _parse_network(rec, line, fingerprint)
    return _parse_figures(rec, line, info, spec)


def _parse_context(rec: dict[str, Any], line: str) -> DeviceInfo:
    extra = parse_json(_text(rec["extra"]) or "{}", f"{line}: extra", TableError)
    if not isinstance(extra, dict):
        raise TableError(f"{line}: extra must be a JSON object")
    threads = None if _missing(rec["threads"]) else _integer(rec["threads"], "threads", line)
    info = DeviceInfo(name=_text(rec["device"]), hardware=_text(rec["hardware"]),
                      runtime=_text(rec["runtime"]), runtime_version=_text(rec["runtime_version"]),
                      precision=_text(rec["precision"]), threads=threads,
                      affinity=_text(rec["affinity"]),
                      batch_size=_integer(rec["batch_size"], "batch_size", line), extra=extra)
    if not info.name:
        raise TableError(f"{line}: device is empty")
    if info.context_key != _text(rec["context_key"]):
        raise TableError(f"{line}: the device fields hash to context {info.context_key}, but "
                         f"context_key says {_text(rec['context_key'])!r} (hand-edited file?)")
    return info


def _parse_network(rec: dict[str, Any], line: str, fingerprint: str) -> NetworkSpec:
    arch = parse_json(_text(rec["network_json"]), f"{line}: network_json", TableError)
    try:
        if not isinstance(arch, dict):
            raise SpecError("network_json must be a JSON object")
        spec = NetworkSpec.from_dict({**arch, "name": _text(rec["network"]) or "custom"})
    except SpecError as exc:
        raise TableError(f"{line}: network_json is not a network: {exc}") from None
    if spec.fingerprint != fingerprint:
        raise TableError(f"{line}: network_json has fingerprint {spec.fingerprint} but the "
                         f"fingerprint column says {fingerprint!r} (hand-edited file?)")
    return spec


def _parse_figures(rec: dict[str, Any], line: str, info: DeviceInfo,
                   spec: NetworkSpec) -> TableRow:
    try:
        resolution = check_resolution(_integer(rec["resolution"], "resolution", line))
    except SpecError as exc:
        raise TableError(f"{line}: {exc}") from None
    stats = {c: _number(rec[c], c, line, optional=c in OPTIONAL_NUMBERS) for c in STAT_COLUMNS}
    n = stats["n_samples"]
    if not n.is_integer() or n < 1:
        raise TableError(f"{line}: n_samples {rec['n_samples']!r} is not a positive count")
    if stats["latency_ms"] <= 0:
        raise TableError(f"{line}: latency_ms {stats['latency_ms']} is not positive")
    if not stats["ci_low_ms"] <= stats["latency_ms"] <= stats["ci_high_ms"]:
        raise TableError(f"{line}: latency_ms {stats['latency_ms']} lies outside its CI "
                         f"[{stats['ci_low_ms']}, {stats['ci_high_ms']}]")
    if _missing(rec["measured_at"]):
        raise TableError(f"{line}: measured_at is empty")
    return TableRow(info, spec.name, spec, resolution, stats["latency_ms"], stats["ci_low_ms"],
                    stats["ci_high_ms"], int(n), stats["std_ms"], stats["p5_ms"],
                    stats["p95_ms"], _text(rec["measured_at"]), _text(rec["origin"]) or "measured")


def _read_records(path: Path) -> tuple[list[str], list[dict[str, Any]], str]:
    """(columns, one dict per row, "line" or "row"). A CSV is read with the csv module, all
    text (each field is checked and converted by `_parse_row`, with its line named): pandas
    took 0.3 s to import, a third of an offline search's CPU time; Parquet needs pandas."""
    if not path.exists():
        raise TableError(f"no latency table at {path}")
    if path.suffix == ".parquet":
        import pandas as pd

        _need_pyarrow("read")
        try:
            frame = pd.read_parquet(path).astype(object)
        except (ValueError, OSError) as exc:
            raise TableError(f"cannot parse table {path}: {str(exc).strip().splitlines()[0]} "
                             "(truncated or not a latency table?)") from None
        return [str(c) for c in frame.columns], frame.to_dict("records"), "row"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, strict=True))   # strict: a quote cut off at EOF is an error
    except (csv.Error, UnicodeDecodeError, ValueError, OSError) as exc:
        raise TableError(f"cannot parse table {path}: {str(exc).strip().splitlines()[0]} "
                         "(truncated or not a latency table?)") from None
    rows = [r for r in rows if r]     # blank lines carry nothing
    if not rows:
        raise TableError(f"table {path} is empty (no header)")
    columns, records = rows[0], []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) > len(columns):
            raise TableError(f"cannot parse table {path}: line {n} has {len(row)} fields, the "
                             f"header {len(columns)} (truncated or not a latency table?)")
        records.append(dict(zip(columns, row + [""] * (len(columns) - len(row)))))
    return columns, records, "line"


def load_table(path: str | Path, context: DeviceInfo | str | None = None) -> LatencyTable:
    """Read and validate a latency table; with `context`, refuse one that is not entirely
    from that device context (mixed, or another device)."""
    path = Path(path)
    columns, records, unit = _read_records(path)
    if "format_version" not in columns and set(SWEEP_COLUMNS) <= set(columns):
        columns, records = _from_sweep(columns, records, path)
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise TableError(f"table {path} lacks column(s): {', '.join(missing)}")
    rows: list[TableRow] = []
    seen: dict[tuple[str, str, int], str] = {}
    memo: dict = {}
    offset = 2 if unit == "line" else 1  # CSV line numbers count the header
    for i, rec in enumerate(records):
        where = f"table {path} {unit} {i + offset}"
        row = _parse_row(rec, where, memo)
        if row.key in seen:
            raise TableError(f"{where}: duplicate of {seen[row.key]} (same context "
                             f"{row.key[0]}, network {row.network} ({row.key[1]}), resolution "
                             f"{row.resolution})")
        seen[row.key] = f"{unit} {i + offset}"
        rows.append(row)
    table = LatencyTable(rows, str(path))
    if context is not None:
        table.require_context(context)
    return table


SWEEP_COLUMNS = ("resolution", "latency_ms", "ci_low_ms", "ci_high_ms", "n_samples",
                 "stop_reason", "network", "fingerprint", "context_key", "device")


def _from_sweep(columns: list[str], records: list[dict[str, Any]], path: Path):
    """A sweep CSV (`latency-lab sweep`) as table columns: the same statistics and context;
    the network's JSON from the preset it names (a sweep CSV has only the fingerprint),
    origin "sweep"; `measured_at` where the CSV has it (each point's last sample, since
    issue 23), else "not recorded (sweep CSV)"."""
    from latency_lab.network import presets

    if "extra" not in columns:
        raise TableError(f"sweep CSV {path} has no `extra` column (written before sweeps "
                         "recorded it), so its device context cannot be checked; export a "
                         "table from the store instead: latency-lab table export OUT.csv")
    specs = {}
    for name, fp in {(r["network"], r["fingerprint"]) for r in records}:
        spec = presets.get(name) if name in presets.PRESETS else None
        if spec is None or spec.fingerprint != fp:
            raise TableError(f"sweep CSV {path}: network {name} ({fp}) is not a preset, and a "
                             "sweep CSV keeps only its fingerprint; export a table from the "
                             f"store instead: latency-lab table export OUT.csv --network {fp}")
        specs[fp] = json.dumps(spec.arch_dict(), sort_keys=True, separators=(",", ":"))
    added = {"format_version": str(FORMAT_VERSION), "origin": "sweep"}
    unrecorded = "not recorded (sweep CSV)"
    records = [{**r, "network_json": specs[r["fingerprint"]], **added,
                "measured_at": str(r.get("measured_at") or "").strip() or unrecorded}
               for r in records]
    return columns + [c for c in ("network_json", *added, "measured_at")
                      if c not in columns], records


# -- writing -------------------------------------------------------------------------------
def _need_pyarrow(what: str) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise TableError(f"cannot {what} Parquet: pyarrow is not installed "
                         "(pip install pyarrow), or use a .csv file")


def table_suffix(path: Path) -> str:
    """The format a table file is written in, by its suffix; standard output is CSV."""
    from latency_lab.fileio import is_std_stream

    if is_std_stream(path):
        return ".csv"
    if path.suffix not in (".csv", ".parquet"):
        raise TableError(f"table file {path} must end in .csv or .parquet")
    return path.suffix


def write_table(table: LatencyTable | Iterable[TableRow], path: str | Path) -> Path:
    import pandas as pd

    path = Path(path)
    rows = table.rows if isinstance(table, LatencyTable) else list(table)
    suffix = table_suffix(path)
    frame = pd.DataFrame([r.record() for r in rows], columns=list(COLUMNS))
    frame["threads"] = frame["threads"].astype("Int64")  # None stays empty, not 1.0
    if suffix == ".parquet":
        _need_pyarrow("write")
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def store_rows(store, device: str | None = None, network: str | None = None) -> list[TableRow]:
    """Table rows of the store: the newest finished measurement per key (statistics of its
    raw samples) and imported summaries for keys never measured here. `device` filters by
    device name or context key (prefix), `network` by network name or fingerprint."""
    contexts = store.contexts()
    keys = list(contexts) if device is None else _match_contexts(contexts, device)
    names = store.network_fingerprints("network")
    fps = [fp for fp, name in names.items()
           if network is None or network in (fp, name)]
    rows: dict[tuple[str, str, int], TableRow] = {}
    for key in keys:
        for fp in fps:
            arch = store.network_spec(fp)
            spec = NetworkSpec.from_dict(arch)
            for mid in store.done_measurements(key, fp):
                m = store.measurement(mid)
                s = m.stats
                at = datetime.fromtimestamp(store.finished_at(mid) or 0, timezone.utc)
                r = TableRow(m.context, names[fp], spec, m.resolution, s.median_ms,
                             s.ci_low_ms, s.ci_high_ms, s.count, s.std_ms, s.p5_ms, s.p95_ms,
                             at.isoformat(timespec="seconds"), "measured")
                rows[r.key] = r
            for d in store.summaries(key, fp):
                k = (key, fp, int(d["resolution"]))
                if k not in rows:
                    rows[k] = TableRow(contexts[key], names[fp], spec, k[2], d["latency_ms"],
                                       d["ci_low_ms"], d["ci_high_ms"], d["n_samples"],
                                       _nan(d["std_ms"]), _nan(d["p5_ms"]), _nan(d["p95_ms"]),
                                       d["measured_at"], "imported")
    return [rows[k] for k in sorted(rows)]


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def export_table(store, path: str | Path, device: str | None = None,
                 network: str | None = None) -> LatencyTable:
    """Write the store's latencies (filtered) as a table file; returns what was written."""
    rows = store_rows(store, device, network)
    if not rows:
        contexts = store.contexts()
        what = " and ".join(f for f in (f"device {device!r}" if device else "",
                                        f"network {network!r}" if network else "") if f)
        raise TableError(f"nothing to export from store {store.path}"
                         + (f" for {what}" if what else "") + "; contexts in it: "
                         + (", ".join(f"{k} ({c.name})" for k, c in contexts.items()) or "none"))
    write_table(rows, path)
    return LatencyTable(rows, str(path))


def import_table(path: str | Path, store, context: DeviceInfo | str | None = None) -> int:
    """Validate a table and keep its rows in the store as imported summaries; returns the
    number of rows. Raw samples are not in a table and none are invented."""
    table = load_table(path, context)
    source = Path(path).name
    for r in table.rows:
        summary = {c: (None if isinstance(getattr(r, c), float) and math.isnan(getattr(r, c))
                       else getattr(r, c)) for c in STAT_COLUMNS}
        store.add_summary(r.context, r.spec, r.resolution, summary, r.measured_at, source)
    return len(table)
