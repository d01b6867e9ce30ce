"""Files written whole or not at all: every output of latency-lab goes through `atomic_path`.

A result file is first written to a temporary name beside it (same directory, so the final
`os.replace` is an atomic rename on the same file system), flushed to disk, given the mode an
ordinary `open(path, "w")` would give (mkstemp creates 0600), and renamed over the target only
when complete. If anything fails (a full disk, Ctrl-C, a bug in the writer) the temporary file
is removed and the previous file, if any, stays exactly as it was. OS errors become
`FileWriteError`, a user error the CLI prints in one line.

`atomic_dir` does the same for a folder of many files (a generated data set): it is filled
under a temporary name beside its target and renamed into place when complete, every file
and folder synced first, so a reader never sees half a data set.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from latency_lab.errors import UserError


class FileWriteError(UserError):
    """An output file could not be written (no space, no permission, not a directory)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that pick the format
    from the name keep working); on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:   # the writer may have closed it without syncing
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it becomes `path` (which must be
    absent or empty), on failure it is removed with everything in it."""
    import shutil

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        yield tmp
        for folder, _, files in os.walk(tmp, topdown=False):
            for name in files:
                with open(os.path.join(folder, name), "rb+") as f:
                    os.fsync(f.fileno())
            os.chmod(folder, 0o777 & ~_umask())
            _fsync_dir(folder)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_dir(folder: str | Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8, newlines as given) to `path` whole or not at all."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(data)
    return path
