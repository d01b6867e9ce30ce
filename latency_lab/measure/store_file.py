"""The store's file: looked at read-only before anything is written, SQLite failures as one line.

`inspect_store` opens an existing file read-only (`mode=ro`) and refuses, before a single byte
is written, a file that is not SQLite, a database of another program (it would otherwise gain
latency-lab's tables and WAL mode) or a store of another schema version. `guarded` wraps every
public `Store` method so that what SQLite reports later (a full disk, a damaged page, a lock
held too long) is a one-line `StoreError` saying what to do; programming errors keep their
traceback.
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path

from latency_lab.errors import UserError


class StoreError(UserError):
    """The store file is unusable (not a database, wrong schema, unwritable)."""


def sqlite_errors(method):
    """SQLite failures of a store operation as one-line StoreErrors (programming errors stay)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError)):
                raise
            raise StoreError(explain(self.path, exc)) from None
    return wrapper


def explain(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "full" in text or "disk I/O" in text:
        return (f"store {path}: the disk is full ({text}); every sample taken before is kept, "
                "free some space and run again to resume")
    if "not a database" in text:
        return (f"cannot use store {path}: {text} (left unchanged; give another --store)")
    if "malformed" in text or "corrupt" in text:
        return (f"store {path} is damaged ({text}); keep a copy, then `sqlite3 {path} .recover` "
                "or use another --store")
    if "locked" in text or "busy" in text:
        return f"store {path} is locked by another process ({text}); try again"
    return f"cannot use store {path}: {text}"


def guarded(cls):
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, sqlite_errors(value))
    return cls


def inspect_store(path: Path, schema_version: int, core_tables: set[str]) -> int | None:
    """Look at an existing file read-only: its schema version, or None for an empty file or an
    empty database (a new store). StoreError, with nothing written, for a file that is not a
    SQLite database, a database of another program, or a store of another schema version."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from None
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return None
        if not core_tables <= tables:
            raise StoreError(f"cannot use store {path}: a SQLite database of another program "
                             f"(tables {', '.join(sorted(tables)[:8])}), left unchanged; give "
                             "another --store")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(explain(path, exc)) from None
    finally:
        db.close()
    version = str(row[0]).strip() if row else ""
    if not version.isdigit():
        raise StoreError(f"cannot use store {path}: unreadable schema version {version!r:.40}")
    if int(version) != schema_version:
        raise StoreError(f"cannot use store {path}: schema version {version}, this latency-lab "
                         f"reads {schema_version}")
    return int(version)
