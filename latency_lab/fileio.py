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

`check_output_file` / `check_output_dir` refuse an output path that cannot be written before
any work starts; `read_text` and `parse_json` read inputs as data with one-line errors (not
UTF-8, malformed, nested too deeply, NaN or Infinity).
"""

from __future__ import annotations

import json
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


# -- checking outputs before the work, reading inputs as data ---------------------------------
def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Refuse, before any work is done, an output file that cannot be written: a directory at
    its name, a regular file where one of its parent directories should be (at any depth), or
    no permission to create it. The parents are not created here (the write does that)."""
    path = Path(path)
    if path.is_dir():
        raise FileWriteError(f"{what} {path} is a directory")
    _check_parents(path, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise FileWriteError(f"cannot write {what} {path}: permission denied")
    return path


def check_output_dir(path: str | Path, what: str = "output directory") -> Path:
    """As `check_output_file`, for a directory that will hold outputs."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileWriteError(f"{what} {path} exists and is not a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise FileWriteError(f"cannot write into {what} {path}: permission denied")
        return path
    _check_parents(path, what)
    return path


def _check_parents(path: Path, what: str) -> None:
    for parent in path.absolute().parents:   # the nearest one that exists decides
        if parent.exists():
            if not parent.is_dir():
                raise FileWriteError(f"cannot write {what} {path}: {parent} is a file, "
                                     "not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise FileWriteError(f"cannot write {what} {path}: no permission to write "
                                     f"in {parent}")
            return


class FileReadError(UserError):
    """An input file that cannot be read as text (missing, unreadable, not UTF-8)."""


def read_text(path: str | Path, what: str, error: type[UserError] = FileReadError) -> str:
    """A text input as a string (UTF-8; a byte-order mark is dropped): OS errors and bytes
    that are not UTF-8 become one-line `error`s naming the file."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}: "
                    f"{exc.object[exc.start:exc.start + 1]!r})") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, what: str, error: type[UserError] = FileReadError) -> object:
    """JSON as data, or a one-line `error`: malformed text, nesting deeper than the parser's
    recursion limit, and NaN/Infinity (which Python accepts but JSON does not) are refused."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON ({exc}; truncated?)") from None
    except ValueError as exc:
        raise error(f"{what}: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to be a latency-lab file") from None
