"""SQLite store of every latency sample taken, so that nothing measured is ever lost.

Tables: `contexts` (DeviceInfo JSON by context key), `networks` (spec JSON by fingerprint),
`measurements` (one per context x fingerprint x resolution x attempt: status open/done, stop
reason, facts) and `samples` (every raw sample with its round, time, the machine-drift
factor of its visit, see `drift.py`, and the host's 1-minute load average at the visit: a
stored latency says under what load it was taken). Samples are committed as they
are taken; an interrupted sweep finds its open measurements and goes on. A re-measurement
opens a new measurement; old samples stay.

`imported` holds rows imported from a latency table (`tables/latency_table.py`): a table
carries only summary statistics (median, CI, sample count, spread), never raw samples, so they
are kept apart from `measurements`/`samples` and never mistaken for raw data: the protocol does
not resume from them (a real device measures again), and exports prefer a real measurement of
the same key. A `networks` row may also describe a single block of the lookup table
(`tables/lut_record.py`: JSON {"block": {...}}); `network_fingerprints(kind="network")` leaves
those out. The `imported` table was added without a schema bump: `CREATE TABLE IF NOT EXISTS`
adds it to older stores on open; so were `leases` (one owner per open measurement: claiming,
resuming and releasing points is `lease.py`) and `evaluations` (the accuracy cache's rows:
`store_evaluations.py`). The schema of every table is here.

A file that exists is first inspected read-only (`store_file.inspect_store`): a SQLite file
that is not a latency-lab store (another program's database) or has another schema version is
refused without being touched. Every SQLite failure afterwards (a full disk, a damaged page, a
lock held too long) is a one-line `StoreError` (`store_file.guarded`); a store that could not
be created is removed again, and the WAL is checkpointed into the database after every round
(`checkpoint`), so it never grows with a long sweep.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from latency_lab.measure import lease
from latency_lab.measure.store_file import (StoreError, explain, guarded, inspect_store,
                                            quick_check)
from latency_lab.measure.api import DeviceInfo, Measurement
from latency_lab.network.spec import NetworkSpec

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30   # how long a write waits for another process's transaction
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contexts (key TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (fingerprint TEXT PRIMARY KEY, name TEXT, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    context_key TEXT NOT NULL REFERENCES contexts(key),
    fingerprint TEXT NOT NULL REFERENCES networks(fingerprint),
    resolution INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'done')),
    stop_reason TEXT NOT NULL DEFAULT '',
    protocol TEXT NOT NULL DEFAULT '{}',
    facts TEXT NOT NULL DEFAULT '{}',
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS measurements_key ON measurements(context_key, fingerprint, resolution);
CREATE TABLE IF NOT EXISTS samples (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id),
    round INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    taken_at REAL NOT NULL,
    drift REAL NOT NULL DEFAULT 1.0,
    load REAL
);
CREATE INDEX IF NOT EXISTS samples_measurement ON samples(measurement_id);
CREATE TABLE IF NOT EXISTS imported (
    context_key TEXT NOT NULL REFERENCES contexts(key),
    fingerprint TEXT NOT NULL REFERENCES networks(fingerprint),
    resolution INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    ci_low_ms REAL NOT NULL,
    ci_high_ms REAL NOT NULL,
    n_samples INTEGER NOT NULL,
    std_ms REAL,
    p5_ms REAL,
    p95_ms REAL,
    measured_at TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    imported_at REAL NOT NULL,
    PRIMARY KEY (context_key, fingerprint, resolution)
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL REFERENCES networks(fingerprint),
    resolution INTEGER NOT NULL,
    evaluator_key TEXT NOT NULL,
    lineage TEXT NOT NULL DEFAULT '',
    evaluator TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    n INTEGER NOT NULL,
    ci_low REAL,
    ci_high REAL,
    seconds REAL NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    evaluated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_key ON evaluations(evaluator_key, fingerprint, resolution,
                                                          lineage);
CREATE TABLE IF NOT EXISTS leases (
    measurement_id INTEGER PRIMARY KEY REFERENCES measurements(id),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    renewed_at REAL NOT NULL
);
"""
# the tables every latency-lab store has had since schema 1 (others are added on open)
_CORE_TABLES = {"meta", "contexts", "networks", "measurements", "samples"}
SUMMARY_FIELDS = ("latency_ms", "ci_low_ms", "ci_high_ms", "n_samples", "std_ms", "p5_ms",
                  "p95_ms")


@guarded
class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store {self.path} is a directory")
        existed = self.path.exists()
        sidecars = {s for s in ("-wal", "-shm") if os.path.lexists(f"{self.path}{s}")}
        try:
            # read-only: a foreign file, another schema, a damaged page: refused before any write
            inspect_store(self.path, SCHEMA_VERSION, _CORE_TABLES)
        except StoreError:
            self._remove_sidecars(sidecars)
            raise
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            if existed:
                self._quick_check(sidecars)
            self._init_schema()
        except (sqlite3.Error, OSError) as exc:
            if not existed:   # a store that could not be created leaves nothing behind
                self._remove_files()
            if isinstance(exc, OSError):
                raise StoreError(f"cannot create store {self.path}: {exc.strerror or exc}") from None
            raise StoreError(explain(self.path, exc)) from None
        except BaseException:   # Ctrl-C, SIGTERM while it is made: no store rather than half a one
            if not existed:
                self._remove_files()
            raise

    def _quick_check(self, sidecars: set[str]) -> None:
        try:
            quick_check(self.db, self.path)
        except StoreError:
            self.db.close()
            self._remove_sidecars(sidecars)
            raise

    def _remove_sidecars(self, had: set[str]) -> None:
        """A refused store is left as it was: the -wal and -shm files that opening it made
        (a store in WAL mode gets them from any reader) go again, if the WAL is empty."""
        wal = Path(f"{self.path}-wal")
        if "-wal" not in had and wal.exists() and wal.stat().st_size > 0:
            return      # something was written after all: keep it (never expected)
        for suffix in {"-wal", "-shm"} - had:
            try:
                os.unlink(f"{self.path}{suffix}")
            except OSError:
                pass

    def _init_schema(self) -> None:
        """The tables and the schema row in one transaction, in one call (a signal is handled
        between Python calls): a store stopped while it was made (Ctrl-C 1.6 s after a sweep
        started, found by the corpus; kill -9) had tables and no schema row, and was refused
        for ever after as of an 'unreadable schema version'."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(f"BEGIN;\n{_SCHEMA}\nINSERT OR IGNORE INTO meta VALUES ('schema', "
                              f"'{SCHEMA_VERSION}');\nCOMMIT;")
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(samples)")}
        if "drift" not in columns:  # stores written before drift correction existed
            self.db.execute("ALTER TABLE samples ADD COLUMN drift REAL NOT NULL DEFAULT 1.0")
        if "load" not in columns:   # stores written before the load was recorded: NULL there
            self.db.execute("ALTER TABLE samples ADD COLUMN load REAL")
        self.db.commit()

    def _remove_files(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except OSError:
                pass

    def close(self) -> None:
        self.db.close()

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (after every round of a sweep: left
        alone, SQLite checkpoints only after ~4 MB and never shrinks the file). It never waits:
        what another process is reading or writing now goes at a later checkpoint."""
        self.db.execute("PRAGMA busy_timeout=0")
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def register(self, info: DeviceInfo | None, spec: NetworkSpec) -> None:
        with self.db:
            if info is not None:
                self.db.execute("INSERT OR IGNORE INTO contexts VALUES (?, ?)",
                                (info.context_key, json.dumps(info.to_dict(), sort_keys=True)))
            self.db.execute("INSERT OR IGNORE INTO networks VALUES (?, ?, ?)",
                            (spec.fingerprint, spec.name, json.dumps(spec.arch_dict(), sort_keys=True)))

    def add_summary(self, info: DeviceInfo, spec: NetworkSpec, resolution: int,
                    summary: dict[str, Any], measured_at: str, source: str = "") -> None:
        """Keep an imported summary row (no raw samples); replaces one with the same key."""
        self.register(info, spec)
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO imported VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (info.context_key, spec.fingerprint, int(resolution),
                 *(summary.get(k) for k in SUMMARY_FIELDS), measured_at, source, time.time()))

    def open_measurement(self, info: DeviceInfo, spec: NetworkSpec, resolution: int,
                         protocol: dict[str, Any] | None = None) -> int:
        self.register(info, spec)
        with self.db:
            cur = self.db.execute(
                "INSERT INTO measurements (context_key, fingerprint, resolution, status, protocol,"
                " started_at) VALUES (?, ?, ?, 'open', ?, ?)",
                (info.context_key, spec.fingerprint, int(resolution),
                 json.dumps(protocol or {}, sort_keys=True), time.time()))
        return int(cur.lastrowid)

    def add_samples(self, measurement_id: int, round_index: int, samples_ms: Iterable[float],
                    facts: dict[str, Any] | None = None, load: float | None = None,
                    taken_at: float | None = None) -> None:
        """One visit's samples, with the host's load average then (None: not known), taken at
        `taken_at` (default now): the caller passes the time it keeps in memory, so that a
        measurement read back pairs its visits with a reference's exactly as it did live."""
        now = time.time() if taken_at is None else float(taken_at)
        with self.db:
            self.db.executemany("INSERT INTO samples (measurement_id, round, latency_ms, taken_at,"
                                " drift, load) VALUES (?, ?, ?, ?, 1.0, ?)",
                                [(measurement_id, round_index, float(s), now, load)
                                 for s in samples_ms])
            lease.renew(self.db, now)   # another host judges this process's leases by this time
            if facts:
                old = json.loads(self.db.execute("SELECT facts FROM measurements WHERE id=?",
                                                 (measurement_id,)).fetchone()[0])
                old.update(facts)
                self.db.execute("UPDATE measurements SET facts=? WHERE id=?",
                                (json.dumps(old, sort_keys=True, default=str), measurement_id))

    def set_drift(self, factors: Iterable[tuple[int, int, float]]) -> None:
        """Set the drift factor of visits given as (measurement id, round, factor)."""
        with self.db:
            self.db.executemany("UPDATE samples SET drift=? WHERE measurement_id=? AND round=?",
                                [(float(f), int(m), int(r)) for m, r, f in factors])

    def finish(self, measurement_id: int, stop_reason: str) -> None:
        with self.db:
            self.db.execute("UPDATE measurements SET status='done', stop_reason=?, finished_at=?"
                            " WHERE id=?", (stop_reason, time.time(), measurement_id))
            lease.end(self.db, measurement_id)

    # -- reading -------------------------------------------------------------------------
    def latest(self, context_key: str, fingerprint: str, resolution: int) -> tuple[int, str] | None:
        """(id, status) of the newest measurement for this key, or None."""
        row = self.db.execute(
            "SELECT id, status FROM measurements WHERE context_key=? AND fingerprint=? AND"
            " resolution=? ORDER BY id DESC LIMIT 1", (context_key, fingerprint, int(resolution))
        ).fetchone()
        return (int(row[0]), row[1]) if row else None

    def samples(self, measurement_id: int) -> tuple[list[float], list[int], list[float], list[float]]:
        """(latencies ms, rounds, times taken, drift factors), in the order taken."""
        rows = self.db.execute("SELECT latency_ms, round, taken_at, drift FROM samples WHERE"
                               " measurement_id=? ORDER BY rowid", (measurement_id,)).fetchall()
        return tuple(list(col) for col in zip(*rows)) if rows else ([], [], [], [])

    def measurement(self, measurement_id: int) -> Measurement:
        row = self.db.execute(
            "SELECT m.context_key, m.fingerprint, m.resolution, m.stop_reason, m.facts, c.info,"
            " n.name FROM measurements m JOIN contexts c ON c.key = m.context_key"
            " JOIN networks n ON n.fingerprint = m.fingerprint WHERE m.id=?", (measurement_id,)
        ).fetchone()
        if row is None:
            raise KeyError(measurement_id)
        samples, rounds, times, drift = self.samples(measurement_id)
        loads = [r[0] for r in self.db.execute("SELECT load FROM samples WHERE measurement_id=?"
                                               " AND load IS NOT NULL", (measurement_id,))]
        return Measurement(context=DeviceInfo.from_dict(json.loads(row[5])), network=row[6],
                           fingerprint=row[1], resolution=row[2], samples_ms=tuple(samples),
                           rounds=tuple(rounds), stop_reason=row[3], facts=json.loads(row[4]),
                           drift=tuple(drift) if any(d != 1.0 for d in drift) else (),
                           taken=(min(times), max(times)) if times else None,
                           times=tuple(times),
                           load=(min(loads), max(loads)) if loads else None,
                           measurement_id=measurement_id)

    def done_of(self, context_key: str, fingerprint: str) -> list[tuple[int, int, float, float]]:
        """(id, resolution, first and last sample time) of every finished measurement of a
        network in a context: what a latency scale ties stored measurements to (scale.py)."""
        return [(int(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in self.db.execute(
            "SELECT m.id, m.resolution, MIN(s.taken_at), MAX(s.taken_at) FROM measurements m"
            " JOIN samples s ON s.measurement_id = m.id WHERE m.context_key=? AND"
            " m.fingerprint=? AND m.status='done' GROUP BY m.id ORDER BY m.id",
            (context_key, fingerprint))]

    def network_spec(self, fingerprint: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT name, spec FROM networks WHERE fingerprint=?",
                              (fingerprint,)).fetchone()
        return {"name": row[0], **json.loads(row[1])} if row else None

    def contexts(self) -> dict[str, DeviceInfo]:
        return {k: DeviceInfo.from_dict(json.loads(v))
                for k, v in self.db.execute("SELECT key, info FROM contexts ORDER BY key")}

    def network_fingerprints(self, kind: str = "network") -> dict[str, str]:
        """fingerprint -> name of the stored networks (kind "network") or LUT blocks ("block")."""
        out = {}
        for fp, name, spec in self.db.execute("SELECT fingerprint, name, spec FROM networks"
                                              " ORDER BY name, fingerprint"):
            if ("block" in json.loads(spec)) == (kind == "block"):
                out[fp] = name
        return out

    def finished_at(self, measurement_id: int) -> float | None:
        row = self.db.execute("SELECT finished_at FROM measurements WHERE id=?",
                              (measurement_id,)).fetchone()
        return row[0] if row else None

    def summaries(self, context_key: str | None = None,
                  fingerprint: str | None = None) -> list[dict[str, Any]]:
        """Imported summary rows (dicts with the `imported` table's columns)."""
        q = ("SELECT * FROM imported WHERE 1=1" + (" AND context_key=?" if context_key else "")
             + (" AND fingerprint=?" if fingerprint else "")
             + " ORDER BY context_key, fingerprint, resolution")
        cur = self.db.execute(q, [a for a in (context_key, fingerprint) if a])
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def done_measurements(self, context_key: str | None = None,
                          fingerprint: str | None = None) -> list[int]:
        """Ids of the newest finished measurement per (context, fingerprint, resolution)."""
        q = ("SELECT MAX(id) FROM measurements WHERE status='done'"
             + (" AND context_key=?" if context_key else "")
             + (" AND fingerprint=?" if fingerprint else "")
             + " GROUP BY context_key, fingerprint, resolution ORDER BY context_key, fingerprint,"
               " resolution")
        args = [a for a in (context_key, fingerprint) if a]
        return [r[0] for r in self.db.execute(q, args).fetchall()]
