"""The store's file: looked at read-only before anything is written, SQLite failures as one line.

`inspect_store` opens an existing file read-only (`mode=ro`) and refuses, before a single byte
is written, a file that is not SQLite, a database of another program (it would otherwise gain
latency-lab's tables and WAL mode), a store of another schema version, and a damaged store:
`PRAGMA quick_check` (the b-tree structure of every page, without the index cross-checks of
integrity_check; 46 ms for a 6.6 MB store here) runs once per file state and process. A
damaged store used to be written into by `sweep` and read by `table export` with exit 0
(issue 25). A path that is not a regular file (a FIFO, a device node, a socket) is refused:
SQLite cannot keep a store there, and opening a FIFO blocks. `guarded` wraps every
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


def quick_check(db: sqlite3.Connection, path: Path) -> None:
    """PRAGMA quick_check on the store's own connection, before anything is written, once per
    state of the file in this process; a damaged page is a StoreError saying what to do.
    (On the read-only connection of `inspect_store` a store in WAL mode would keep the -shm
    file that connection made: only a writer removes it.)"""
    try:
        st = path.stat()
    except OSError:
        return
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _checked or st.st_size == 0:
        return
    rows = [str(r[0]) for r in db.execute("PRAGMA quick_check(5)")]
    if rows != ["ok"]:
        first = " ".join(" ".join(rows).split())[:200]
        raise StoreError(f"store {path} is damaged (quick_check: {first}); nothing was written "
                         f"to it: keep a copy, then recover what it holds with `sqlite3 {path} "
                         f".recover | sqlite3 recovered.sqlite`, or give another --store")
    _checked.add(key)


def guarded(cls):
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, sqlite_errors(value))
    return cls


_checked: set[tuple] = set()     # (device, inode, size, mtime) of files quick_check passed


def inspect_store(path: Path, schema_version: int, core_tables: set[str]) -> int | None:
    """Look at an existing file read-only: its schema version, or None for an empty file or an
    empty database (a new store). StoreError, with nothing written, for a file that is not a
    SQLite database, a database of another program, a store of another schema version, or a
    damaged store (quick_check)."""
    import stat

    if not path.exists():
        return None
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"cannot use store {path}: not a regular file (a FIFO, a device node "
                         "or a socket); give a file name for --store")
    if st.st_size == 0:
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
        if row is None and not db.execute("SELECT 1 FROM measurements LIMIT 1").fetchone():
            # tables and no schema row, nothing measured: a store whose making was stopped
            # before its schema row (made in several commits before issue 25's fix, which
            # makes it in one); opening it completes it
            return None
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
