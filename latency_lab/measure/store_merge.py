"""Moving measurements between stores: a device's own store on its host -> the driver's store.

A device actor (`device_actor.py`) commits every sample to a store on the host the device is
attached to; what it measured comes back to the store of the process that asked as a dump of
plain rows (`export_measurements`) and is merged there (`import_measurements`). A measurement
is identified across stores by (context key, fingerprint, resolution, started_at): importing the
same dump twice changes nothing, and importing a newer dump of a measurement that was still
open replaces its samples, status and facts with the newer ones. Raw samples are copied as
taken (round, time, drift factor, load average), so statistics recomputed from either store agree.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from latency_lab.measure.store import Store

_MEASUREMENT_COLUMNS = ("context_key", "fingerprint", "resolution", "status", "stop_reason",
                        "protocol", "facts", "started_at", "finished_at")


def export_measurements(store: Store, context_key: str,
                        points: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Every measurement (open or done) of `context_key` at the (fingerprint, resolution)
    points, with their samples, the context and the networks: a picklable dict of rows."""
    db = store.db
    wanted = {(fp, int(r)) for fp, r in points}
    cols = ", ".join(_MEASUREMENT_COLUMNS)
    rows = [r for r in db.execute(f"SELECT id, {cols} FROM measurements WHERE context_key=?"
                                  " ORDER BY id", (context_key,))
            if (r[2], int(r[3])) in wanted]
    context = db.execute("SELECT info FROM contexts WHERE key=?", (context_key,)).fetchone()
    fps = sorted({r[2] for r in rows})
    networks = [db.execute("SELECT fingerprint, name, spec FROM networks WHERE fingerprint=?",
                           (fp,)).fetchone() for fp in fps]
    measurements = []
    for r in rows:
        samples = db.execute("SELECT round, latency_ms, taken_at, drift, load FROM samples"
                             " WHERE measurement_id=? ORDER BY rowid", (r[0],)).fetchall()
        measurements.append({"row": dict(zip(_MEASUREMENT_COLUMNS, r[1:])),
                             "samples": [tuple(s) for s in samples]})
    return {"context": (context_key, context[0]) if context else None,
            "networks": [tuple(n) for n in networks], "measurements": measurements}


def import_measurements(store: Store, dump: dict[str, Any]) -> int:
    """Merge a dump into `store`; returns how many measurements were new or changed."""
    if not dump.get("measurements"):
        return 0
    db = store.db
    changed = 0
    with db:
        if dump["context"]:
            db.execute("INSERT OR IGNORE INTO contexts VALUES (?, ?)", dump["context"])
        db.executemany("INSERT OR IGNORE INTO networks VALUES (?, ?, ?)", dump["networks"])
        for m in dump["measurements"]:
            row, samples = m["row"], m["samples"]
            found = db.execute(
                "SELECT id, status, (SELECT COUNT(*) FROM samples WHERE measurement_id=m.id)"
                " FROM measurements m WHERE context_key=? AND fingerprint=? AND resolution=?"
                " AND started_at=?", (row["context_key"], row["fingerprint"],
                                      row["resolution"], row["started_at"])).fetchone()
            if found and found[1] == row["status"] and found[2] == len(samples):
                continue
            if found:
                mid = found[0]
                db.execute("UPDATE measurements SET status=?, stop_reason=?, facts=?,"
                           " finished_at=? WHERE id=?", (row["status"], row["stop_reason"],
                                                         row["facts"], row["finished_at"], mid))
                db.execute("DELETE FROM samples WHERE measurement_id=?", (mid,))
            else:
                cols = ", ".join(_MEASUREMENT_COLUMNS)
                mid = db.execute(f"INSERT INTO measurements ({cols}) VALUES "
                                 f"({', '.join('?' * len(_MEASUREMENT_COLUMNS))})",
                                 [row[c] for c in _MEASUREMENT_COLUMNS]).lastrowid
            db.executemany("INSERT INTO samples (measurement_id, round, latency_ms, taken_at,"
                           " drift, load) VALUES (?, ?, ?, ?, ?, ?)",
                           [(mid, *s, None)[:6] for s in samples])
            changed += 1
    return changed


def dump_summary(dump: dict[str, Any]) -> str:
    n = len(dump.get("measurements", ()))
    samples = sum(len(m["samples"]) for m in dump.get("measurements", ()))
    ctx = json.loads(dump["context"][1])["name"] if dump.get("context") else "?"
    return f"{n} measurement(s), {samples} samples on {ctx}"


__all__ = ["export_measurements", "import_measurements", "dump_summary"]
