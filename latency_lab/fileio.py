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

What an output path may be (`output_target`, used by both the check and the write, docs/
hardening.md): nothing yet, or a regular file, which is replaced atomically; a symbolic link,
written *through* (its target is replaced atomically and the link stays, as a shell's `>`
does) when the target is a regular file or nothing in an existing folder; this process's own
standard output or error (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/2`), streamed to it.
Anything else is refused in one line before any work: a directory, a device node, a FIFO, a
socket, a link to one of those, a link loop. An atomic rename over a device node replaced
`/dev/full` itself once (issue 25), and a link given as `--out` was replaced by a file.

`safe_name` is the one sanitiser of every name that becomes part of a file name (a network's
name, a device label): one path component, no `..`, nothing hidden.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
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


_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
          stat.S_IFDIR: "a directory"}


def _std_stream(st: os.stat_result) -> int | None:
    """1 or 2 when `st` is this process's standard output or error, else None."""
    for fd in (1, 2):
        try:
            if os.path.samestat(st, os.fstat(fd)):
                return fd
        except OSError:
            pass
    return None


def output_target(path: str | Path, what: str = "output") -> Path | int:
    """Where an output named `path` really goes: the regular file (or the name of a new one)
    to replace atomically, or the file descriptor (1 or 2) of this process's own standard
    output or error. Everything else is a one-line FileWriteError (see the module docstring)."""
    path = Path(path)
    try:
        st = os.stat(path)               # follows links, /dev/stdout's magic ones too
    except (FileNotFoundError, NotADirectoryError):   # new; or a parent is a file (said later)
        st = None
    except OSError as exc:               # a link loop (ELOOP)
        raise FileWriteError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    if st is not None:
        fd = _std_stream(st)
        if fd is not None and not stat.S_ISREG(st.st_mode):
            return fd                     # /dev/stdout on a terminal or a pipe: streamed
        if fd is not None and path.is_symlink():
            return fd                     # /dev/stdout redirected to a file: appended to
    link = path.is_symlink()
    target = Path(os.path.realpath(path)) if link else path
    via = f" (a link to {target})" if link else ""
    if st is None:
        if link and not target.parent.is_dir():
            raise FileWriteError(f"cannot write {what} {path}: it is a link to {target}, in a "
                                 f"folder that does not exist")
        return target
    if stat.S_ISREG(st.st_mode):
        return target
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    hint = ("give a file name (or /dev/stdout for the standard output)"
            if not stat.S_ISDIR(st.st_mode) else "give a file name inside it")
    raise FileWriteError(f"{what} {path} is {kind}{via}: latency-lab writes only regular "
                         f"files, replacing them whole, never a device or a pipe; {hint}")


def is_std_stream(path: str | Path) -> bool:
    """Whether `path` names this process's standard output or error (`/dev/stdout`)."""
    try:
        return isinstance(output_target(path), int)
    except FileWriteError:
        return False


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that pick the format
    from the name keep working); on success it replaces `path`, on failure it is removed.
    `path` is resolved by `output_target`: a link is written through, /dev/stdout streamed."""
    where = output_target(path)
    if isinstance(where, int):
        with _streamed(Path(path), where) as tmp:
            yield tmp
        return
    path = where
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
        output_target(path)           # still nothing or a regular file: never rename over a node
        os.replace(tmp, path)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def _streamed(path: Path, fd: int) -> Iterator[Path]:
    """Write to a private temporary, then copy it to standard output or error whole; what a
    command prints after that goes to stderr, so that stdout holds the output alone."""
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="latency-lab-"))
    tmp = folder / f"out{path.suffix}"
    try:
        yield tmp
        (sys.stdout if fd == 1 else sys.stderr).flush()
        with open(tmp, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            shutil.copyfileobj(src, dst)
        if fd == 1:
            sys.stdout = sys.stderr
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    """Refuse, before any work is done, an output file that cannot be written: a directory,
    a device node, a FIFO or a socket at its name (or a link to one), a regular file where
    one of its parent directories should be (at any depth), or no permission to create it.
    The parents are not created here (the write does that)."""
    path = Path(path)
    where = output_target(path, what)
    if isinstance(where, int):
        return path
    _check_parents(where, what)
    if where.exists() and not os.access(where, os.W_OK):
        raise FileWriteError(f"cannot write {what} {path}: permission denied")
    return path


def check_output_dir(path: str | Path, what: str = "output directory") -> Path:
    """As `check_output_file`, for a directory that will hold outputs (a link to one is
    written into)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        kind = _KINDS.get(stat.S_IFMT(path.stat().st_mode), "a file")
        raise FileWriteError(f"{what} {path} exists and is not a directory ({kind})")
    if path.is_symlink() and not path.exists():
        raise FileWriteError(f"{what} {path} is a link to {os.readlink(path)}, which does not "
                             "exist")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise FileWriteError(f"cannot write into {what} {path}: permission denied")
        return path
    _check_parents(path, what)
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
MAX_NAME_CHARS = 100


def safe_name(name: str) -> str:
    """`name` as one harmless file-name component: every run of characters other than
    letters, digits and `_.+-` becomes `_` (so `a/b/net` is `a_b_net` and `../../x` is
    `.._.._x`), leading dots become `_` (no `..`, no hidden file), at most MAX_NAME_CHARS
    characters, never empty. The one sanitiser of names that become part of a file name."""
    text = _UNSAFE.sub("_", str(name))
    stripped = text.lstrip(".")
    text = "_" * (len(text) > len(stripped)) + stripped
    return text[:MAX_NAME_CHARS] or "_"


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
