"""IDX files (the MNIST family's format), read into numpy arrays with one-line errors.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order. MNIST and Fashion-MNIST use only
unsigned bytes (type 0x08): images are (N, rows, cols), labels (N,). Files may be gzipped
(as Debian's dataset-fashion-mnist ships them) or plain.

Written here rather than taken from a library: the format is the eight lines above, and the
readers on PyPI (idx2numpy, python-mnist) read the whole file as trusted input; this one
reads exactly the declared bytes, so a truncated, padded or mislabelled file is one clear
error, and a header declaring more than `MAX_BYTES` is refused before anything is read.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from latency_lab.errors import UserError

UBYTE = 0x08
MAX_BYTES = 1 << 31           # 2 GiB: the whole of MNIST's training images are 47 MB


class IdxError(UserError):
    """A file that is not a usable IDX file."""


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file with `ndim` dimensions (see the module docstring)."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0":
                raise IdxError(f"{path} is not an IDX file (its magic number is "
                               f"{head.hex() or 'missing'})")
            if head[2] != UBYTE:
                raise IdxError(f"{path}: IDX value type 0x{head[2]:02x} is not supported "
                               f"(only unsigned bytes, 0x08)")
            if head[3] != ndim:
                raise IdxError(f"{path} has {head[3]} dimension(s), expected {ndim}")
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise IdxError(f"{path} is truncated (in its header)")
            dims = struct.unpack(f">{ndim}I", raw)
            size = math.prod(dims)    # Python ints: np.prod's int64 wrapped (2**22*2**21*2**21 = 0)
            if size > MAX_BYTES:
                raise IdxError(f"{path} declares {dims} values ({size} bytes), more than "
                               f"{MAX_BYTES} this reader accepts")
            data = f.read(size)
            if len(data) < size:
                raise IdxError(f"{path} is truncated: {len(data)} of the {size} bytes its "
                               f"header {dims} declares")
            if f.read(1):
                raise IdxError(f"{path} has bytes after the {size} its header {dims} declares")
    except (OSError, EOFError, zlib.error) as exc:   # unreadable, or a damaged gzip stream
        raise IdxError(f"cannot read {path}: {exc}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (gzipped unless `compress` is False): for tests and
    for subsets that other MNIST tools can read."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = (bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())
    path = Path(path)
    path.write_bytes(gzip.compress(blob, mtime=0) if compress else blob)
    return path


__all__ = ["IdxError", "read_idx", "write_idx", "MAX_BYTES"]
