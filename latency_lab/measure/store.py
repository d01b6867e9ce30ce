"""SQLite store of every latency sample taken, so that nothing measured is ever lost.

Tables: `contexts` (DeviceInfo JSON by context key), `networks` (spec JSON by fingerprint),
`measurements` (one per context x fingerprint x resolution x attempt: status open/done, stop
reason, facts) and `samples` (every raw sample with its round, time, and the machine-drift
factor of its visit, see `drift.py`). Samples are committed as they
are taken; an interrupted sweep finds its open measurements and goes on. A re-measurement
opens a new measurement; old samples stay.

`imported` holds rows imported from a latency table (`tables.py`): a table carries only
summary statistics (median, CI, sample count, spread), never raw samples, so they are kept
apart from `measurements`/`samples` and never mistaken for raw data: the protocol does not
resume from them (a real device measures again), and exports prefer a real measurement of the
same key. A `networks` row may also describe a single block of the lookup table
(`lut.py`: JSON {"block": {...}}); `network_fingerprints(kind="network")` leaves those out.
The `imported` table was added without a schema bump: `CREATE TABLE IF NOT EXISTS` adds it to
older stores on open; so was `leases` (one owner per open measurement, see `lease.py`):
`claim` takes a point for this process in one write transaction, `reclaim` re-checks a
point another process holds, `release` gives leases back.

`evaluations` is the accuracy cache (`latency_lab.search.accuracy_cache`): one row per finished
evaluation of a network at a resolution by an evaluator, keyed by the evaluator's key (which
covers everything that changes the number) and, for evaluators that start from a parent's
weights, the lineage. A re-evaluation adds a row; the newest row of a key is its value, the
older ones stay. Added the same way, without a schema bump.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from latency_lab.measure import lease
from latency_lab.measure.store_file import StoreError, explain, guarded, inspect_store
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
    drift REAL NOT NULL DEFAULT 1.0
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
EVALUATION_FIELDS = ("evaluator", "metric", "value", "n", "ci_low", "ci_high", "seconds",
                     "details")

SUMMARY_FIELDS = ("latency_ms", "ci_low_ms", "ci_high_ms", "n_samples", "std_ms", "p5_ms",
                  "p95_ms")


@dataclass(frozen=True)
class Claim:
    """What `Store.claim` found for a point: `status` "done" (a finished measurement to reuse),
    "resume" (an open one, now leased to this process), "new" (opened and leased) or "held"
    (open and leased to `holder`, a process that is still running)."""

    measurement_id: int
    status: str
    holder: lease.Owner | None = None


@guarded
class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store {self.path} is a directory")
        existed = self.path.exists()
        # read-only: a foreign file or another schema is refused before any write
        inspect_store(self.path, SCHEMA_VERSION, _CORE_TABLES)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            self._init_schema()
        except (sqlite3.Error, OSError) as exc:
            if not existed:   # a store that could not be created leaves nothing behind
                self._remove_files()
            if isinstance(exc, OSError):
                raise StoreError(f"cannot create store {self.path}: {exc.strerror or exc}") from None
            raise StoreError(explain(self.path, exc)) from None

    def _init_schema(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(samples)")}
        if "drift" not in columns:  # stores written before drift correction existed
            self.db.execute("ALTER TABLE samples ADD COLUMN drift REAL NOT NULL DEFAULT 1.0")
        if self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
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

    def add_evaluation(self, spec: NetworkSpec, resolution: int, evaluator_key: str,
                       lineage: str, row: dict[str, Any]) -> None:
        """Commit one finished evaluation (`row` has EVALUATION_FIELDS; details a dict)."""
        self.register(None, spec)
        values = [row.get(k) for k in EVALUATION_FIELDS]
        values[-1] = json.dumps(row.get("details") or {}, sort_keys=True, default=str)
        with self.db:
            self.db.execute(
                "INSERT INTO evaluations (fingerprint, resolution, evaluator_key, lineage, "
                + ", ".join(EVALUATION_FIELDS) + ", evaluated_at) VALUES (?, ?, ?, ?, "
                + ", ".join("?" * len(EVALUATION_FIELDS)) + ", ?)",
                (spec.fingerprint, int(resolution), evaluator_key, lineage, *values, time.time()))

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

    # -- one owner per open measurement (lease.py) --------------------------------------
    def claim(self, info: DeviceInfo, spec: NetworkSpec, resolution: int,
              protocol: dict[str, Any] | None = None, remeasure: bool = False,
              reuse: Callable[[int], bool] | None = None) -> Claim:
        """Take the point (context, network, resolution) for this process, in one write
        transaction so that two processes cannot both take it: reuse its finished measurement
        (unless `remeasure`, or `reuse(id)` says it falls short: then it is reopened and
        resumed), resume its open one unless a running process holds that, or open a new
        one."""
        self.register(info, spec)
        with self._write():
            latest = self.latest(info.context_key, spec.fingerprint, resolution)
            if latest and not remeasure:
                mid, status = latest
                if status == "done":
                    if reuse is None or reuse(mid):
                        return Claim(mid, "done")
                    self.db.execute("UPDATE measurements SET status='open', stop_reason='',"
                                    " finished_at=NULL WHERE id=?", (mid,))
                holder = self._holder(mid)
                if holder is not None:
                    return Claim(mid, "held", holder)
                self._lease(mid)
                return Claim(mid, "resume")
            cur = self.db.execute(
                "INSERT INTO measurements (context_key, fingerprint, resolution, status, protocol,"
                " started_at) VALUES (?, ?, ?, 'open', ?, ?)",
                (info.context_key, spec.fingerprint, int(resolution),
                 json.dumps(protocol or {}, sort_keys=True), time.time()))
            self._lease(int(cur.lastrowid))
            return Claim(int(cur.lastrowid), "new")

    def reclaim(self, measurement_id: int) -> Claim:
        """Look again at a point another process held: "done", "resume" (its owner is gone
        or let go: now ours) or still "held"."""
        with self._write():
            row = self.db.execute("SELECT status FROM measurements WHERE id=?",
                                  (measurement_id,)).fetchone()
            if row and row[0] == "done":
                return Claim(measurement_id, "done")
            holder = self._holder(measurement_id)
            if holder is not None:
                return Claim(measurement_id, "held", holder)
            self._lease(measurement_id)
            return Claim(measurement_id, "resume")

    def release(self, measurement_ids: Iterable[int]) -> None:
        """Give back this process's leases on these measurements."""
        me = lease.me()
        with self.db:
            self.db.executemany("DELETE FROM leases WHERE measurement_id=? AND host=? AND pid=?",
                                [(int(m), me.host, me.pid) for m in measurement_ids])

    def _write(self):
        """A write transaction that holds SQLite's write lock from its first read."""
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def _holder(self, measurement_id: int) -> lease.Owner | None:
        """The other, still running process that leases this measurement, or None."""
        row = self.db.execute("SELECT host, pid, started, renewed_at FROM leases WHERE "
                              "measurement_id=?", (measurement_id,)).fetchone()
        if row is None:
            return None
        owner = lease.Owner(row[0], int(row[1]), row[2])
        me = lease.me()
        if (owner.host, owner.pid) == (me.host, me.pid) or lease.is_gone(owner, row[3]):
            return None
        return owner

    def _lease(self, measurement_id: int) -> None:
        me = lease.me()
        self.db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                        (measurement_id, me.host, me.pid, me.started, time.time()))

    def add_samples(self, measurement_id: int, round_index: int, samples_ms: Iterable[float],
                    facts: dict[str, Any] | None = None) -> None:
        now = time.time()
        with self.db:
            self.db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, 1.0)",
                                [(measurement_id, round_index, float(s), now) for s in samples_ms])
            me = lease.me()   # renew this process's leases (another host judges by this time)
            self.db.execute("UPDATE leases SET renewed_at=? WHERE host=? AND pid=?",
                            (now, me.host, me.pid))
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
            self.db.execute("DELETE FROM leases WHERE measurement_id=?", (measurement_id,))

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
        samples, rounds, _, drift = self.samples(measurement_id)
        return Measurement(context=DeviceInfo.from_dict(json.loads(row[5])), network=row[6],
                           fingerprint=row[1], resolution=row[2], samples_ms=tuple(samples),
                           rounds=tuple(rounds), stop_reason=row[3], facts=json.loads(row[4]),
                           drift=tuple(drift) if any(d != 1.0 for d in drift) else ())

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

    def evaluations(self, evaluator_key: str | None = None, fingerprint: str | None = None,
                    resolution: int | None = None, lineage: str | None = None,
                    since: float | None = None) -> list[dict[str, Any]]:
        """The newest evaluation per (evaluator key, fingerprint, resolution, lineage), as dicts
        with the `evaluations` columns plus `network` (name) and `network_json`; `since`: only
        rows evaluated at or after that time."""
        where, args = [], []
        for col, v in (("evaluator_key", evaluator_key), ("fingerprint", fingerprint),
                       ("resolution", resolution), ("lineage", lineage)):
            if v is not None:
                where.append(f"e.{col}=?")
                args.append(v)
        if since is not None:
            where.append("e.evaluated_at>=?")
            args.append(since)
        cur = self.db.execute(
            "SELECT e.*, n.name AS network, n.spec AS network_json FROM evaluations e"
            " JOIN networks n ON n.fingerprint = e.fingerprint WHERE e.id IN (SELECT MAX(id) FROM"
            " evaluations e" + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY evaluator_key, fingerprint, resolution, lineage)"
            " ORDER BY e.evaluator_key, n.name, e.fingerprint, e.resolution, e.lineage", args)
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
