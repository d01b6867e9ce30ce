"""Who owns an open measurement: claims and leases of the store's measurements.

Two sweeps of the same points at once must not add samples to the same open measurement (they
would share one drift fit and mix two machines' loads; an experiment gave CSVs 18.7% apart).
So the store keeps a lease per open measurement (table `leases` of `store.py`, whose rows only
this module reads and writes): the owner's host, process id and process start time. A lease is
taken over only from an owner that is gone:

- same host: the process id no longer exists, or it now belongs to a process started at
  another time (a reused id, e.g. after a reboot);
- another host (a store on a shared file system): the owner cannot be asked, so its lease
  counts as gone once it has not been renewed for `STALE_AFTER_S` (it is renewed at every
  visit, and a visit never takes that long).

A lease is released when its measurement finishes and when the measuring call ends (normally,
by an error or by Ctrl-C); only `kill -9` or a crash leaves one behind, and then the owner's
process is gone.

`claim` takes a point (context, network, resolution) for this process in one write transaction,
`reclaim` re-checks a point another process holds, `release` gives leases back; the store
renews this process's leases with every sample it commits (`renew`) and ends a measurement's
lease when it finishes (`end`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from latency_lab.measure.api import DeviceInfo
from latency_lab.measure.store_file import sqlite_errors
from latency_lab.network.spec import NetworkSpec

STALE_AFTER_S = 3600.0


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux /proc), or '' elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]   # field 22; the name may contain spaces
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str    # process start time, '' where unknown

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


_me: Owner | None = None


def me() -> Owner:
    """This process (recomputed after a fork: the child is another owner)."""
    global _me
    if _me is None or _me.pid != os.getpid():
        _me = Owner(socket.gethostname(), os.getpid(), _start_time(os.getpid()))
    return _me


def is_gone(owner: Owner, renewed_at: float, now: float | None = None) -> bool:
    """True when `owner` can no longer be measuring (see the module docstring)."""
    if owner.host != me().host:
        return (now or time.time()) - renewed_at > STALE_AFTER_S
    if owner.pid <= 0:
        return True
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass   # exists, belongs to another user
    started = _start_time(owner.pid)
    return bool(owner.started and started and started != owner.started)


# -- claims: the store's `leases` table ----------------------------------------------------
# Each function takes an open `Store` (store.py) or its connection; SQLite failures of the
# public ones are one-line StoreErrors, as for the store's own methods (store_file.guarded).
@dataclass(frozen=True)
class Claim:
    """What `claim` found for a point: `status` "done" (a finished measurement to reuse),
    "resume" (an open one, now leased to this process), "new" (opened and leased) or "held"
    (open and leased to `holder`, a process that is still running)."""

    measurement_id: int
    status: str
    holder: Owner | None = None


@sqlite_errors
def claim(store, info: DeviceInfo, spec: NetworkSpec, resolution: int,
          protocol: dict[str, Any] | None = None, remeasure: bool = False,
          reuse: Callable[[int], bool | str] | None = None) -> Claim:
    """Take the point (context, network, resolution) for this process, in one write
    transaction so that two processes cannot both take it: reuse its finished measurement
    (unless `remeasure`, or `reuse(id)` says it falls short: False, then it is reopened and
    resumed; "new", then a new one is opened beside it), resume its open one unless a
    running process holds that, or open a new one."""
    store.register(info, spec)
    db = store.db
    with _write(db):
        latest = store.latest(info.context_key, spec.fingerprint, resolution)
        if latest and not remeasure:
            mid, status = latest
            verdict = reuse(mid) if status == "done" and reuse is not None else True
            if status == "done" and verdict is True:
                return Claim(mid, "done")
            if status == "done" and verdict != "new":
                db.execute("UPDATE measurements SET status='open', stop_reason='',"
                           " finished_at=NULL WHERE id=?", (mid,))
            if status != "done" or verdict != "new":
                holder = _holder(db, mid)
                if holder is not None:
                    return Claim(mid, "held", holder)
                _lease(db, mid)
                return Claim(mid, "resume")
        cur = db.execute(
            "INSERT INTO measurements (context_key, fingerprint, resolution, status, protocol,"
            " started_at) VALUES (?, ?, ?, 'open', ?, ?)",
            (info.context_key, spec.fingerprint, int(resolution),
             json.dumps(protocol or {}, sort_keys=True), time.time()))
        _lease(db, int(cur.lastrowid))
        return Claim(int(cur.lastrowid), "new")


@sqlite_errors
def reclaim(store, measurement_id: int) -> Claim:
    """Look again at a point another process held: "done", "resume" (its owner is gone
    or let go: now ours) or still "held"."""
    db = store.db
    with _write(db):
        row = db.execute("SELECT status FROM measurements WHERE id=?",
                         (measurement_id,)).fetchone()
        if row and row[0] == "done":
            return Claim(measurement_id, "done")
        holder = _holder(db, measurement_id)
        if holder is not None:
            return Claim(measurement_id, "held", holder)
        _lease(db, measurement_id)
        return Claim(measurement_id, "resume")


@sqlite_errors
def release(store, measurement_ids: Iterable[int]) -> None:
    """Give back this process's leases on these measurements."""
    mine = me()
    with store.db:
        store.db.executemany("DELETE FROM leases WHERE measurement_id=? AND host=? AND pid=?",
                             [(int(m), mine.host, mine.pid) for m in measurement_ids])


@sqlite_errors
def release_all_mine(store) -> None:
    """Give back every lease this process holds in the store: when it stops on a signal, a
    lease claimed just before the signal may not have reached the caller's list yet."""
    mine = me()
    with store.db:
        store.db.execute("DELETE FROM leases WHERE host=? AND pid=? AND started=?",
                         (mine.host, mine.pid, mine.started))


def renew(db: sqlite3.Connection, now: float) -> None:
    """Renew this process's leases (another host judges by this time); inside the caller's
    transaction."""
    mine = me()
    db.execute("UPDATE leases SET renewed_at=? WHERE host=? AND pid=?", (now, mine.host, mine.pid))


def end(db: sqlite3.Connection, measurement_id: int) -> None:
    """Drop the lease of a finished measurement; inside the caller's transaction."""
    db.execute("DELETE FROM leases WHERE measurement_id=?", (measurement_id,))


def _write(db: sqlite3.Connection) -> sqlite3.Connection:
    """A write transaction that holds SQLite's write lock from its first read."""
    db.execute("BEGIN IMMEDIATE")
    return db


def _holder(db: sqlite3.Connection, measurement_id: int) -> Owner | None:
    """The other, still running process that leases this measurement, or None."""
    row = db.execute("SELECT host, pid, started, renewed_at FROM leases WHERE "
                     "measurement_id=?", (measurement_id,)).fetchone()
    if row is None:
        return None
    owner = Owner(row[0], int(row[1]), row[2])
    mine = me()
    if (owner.host, owner.pid) == (mine.host, mine.pid) or is_gone(owner, row[3]):
        return None
    return owner


def _lease(db: sqlite3.Connection, measurement_id: int) -> None:
    mine = me()
    db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
               (measurement_id, mine.host, mine.pid, mine.started, time.time()))
