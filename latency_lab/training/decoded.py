"""An image folder decoded once: every image's pixels in one cached uint8 array.

A training reads every image once per epoch; from PNG files that is an open, a zlib
decompression and a colour conversion per image per epoch, in a DataLoader worker that
shares the machine's two cores with the training. `pixels(folder, split)` decodes a split
once into the cache (`<cache>/datasets/decoded-<key>.npy` and `.index.npy`) and memory-maps
it afterwards; `training.data.ImageDataset` then builds each image from it instead of its
file.

The key is the data set's fingerprint (every file's split, class, path and size), the split
and `DECODE_VERSION`; the decoded size of every image is stored beside its pixels
(offset, height, width, channels), so folders with images of different sizes work too. The
pixels are what `Image.open(path).convert("RGB")` starts from: grey images ("L") are kept as
one channel and converted when used, any other mode is stored as RGB. Crops, resizes and
flips then run exactly as they do on a decoded file, so a training from the array computes
the same batches, bit for bit, as one from the files (`tests/test_decoded.py`); that is why
the choice is not part of a run's key.

A split whose decoded pixels would exceed `MAX_BYTES` is not cached (`pixels` returns None
and the dataset reads its files): the array is meant for the small sets a CPU trains on
(Fashion-MNIST's 60,000 training images are 47 MB).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latency_lab.training.imagefolder import ImageFolder

DECODE_VERSION = 1
MAX_BYTES = 4 << 30


@dataclass(frozen=True)
class Decoded:
    """Pixels of one split: `flat` (uint8), `index` rows (offset, height, width, channels)."""

    flat: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def image(self, i: int):
        """Image i as Pillow gives it before `.convert("RGB")` (grey stays grey)."""
        from PIL import Image

        off, h, w, c = (int(v) for v in self.index[i])
        a = self.flat[off:off + h * w * c]
        return Image.fromarray(np.asarray(a).reshape((h, w) if c == 1 else (h, w, c)))


def cache_key(folder: ImageFolder, split: str) -> str:
    text = f"{DECODE_VERSION}\n{folder.fingerprint}\n{split}\n{len(folder.train)}/{len(folder.val)}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _paths(folder: ImageFolder, split: str) -> tuple[Path, Path]:
    from latency_lab.paths import cache_dir

    base = cache_dir() / "datasets" / f"decoded-{cache_key(folder, split)}"
    return base.with_suffix(".npy"), base.with_suffix(".index.npy")


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im if im.mode == "L" else im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


def _save(array: np.ndarray, path: Path) -> None:
    from latency_lab.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _load(flat_path: Path, index_path: Path) -> Decoded | None:
    try:
        index = np.load(index_path, allow_pickle=False)
        flat = np.load(flat_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if index.ndim != 2 or index.shape[1] != 4 or flat.ndim != 1 or flat.dtype != np.uint8:
        return None
    if len(index) and int(index[-1, 0] + index[-1, 1:].prod()) != len(flat):
        return None
    return Decoded(flat, index)


def pixels(folder: ImageFolder, split: str, log=None) -> Decoded | None:
    """The decoded split from the cache, decoding it now the first time; None when it is too
    large to cache (see the module docstring) or the cache cannot be written."""
    from latency_lab.errors import UserError

    items = folder.train if split == "train" else folder.val
    flat_path, index_path = _paths(folder, split)
    if flat_path.exists() and index_path.exists():
        found = _load(flat_path, index_path)
        if found is not None and len(found) == len(items):
            return found
    arrays, total = [], 0
    for rel, _ in items:
        a = _decode(Path(folder.root) / rel)
        total += a.size
        if total > MAX_BYTES:
            if log:
                log(f"{folder.root} {split}/ decodes to more than {MAX_BYTES >> 30} GiB: "
                    f"reading its files every epoch")
            return None
        arrays.append(a)
    index = np.zeros((len(arrays), 4), dtype=np.int64)
    off = 0
    for i, a in enumerate(arrays):
        h, w = a.shape[:2]
        c = 1 if a.ndim == 2 else a.shape[2]
        index[i] = (off, h, w, c)
        off += a.size
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.uint8)
    try:
        _save(flat, flat_path)
        _save(index, index_path)
    except UserError:
        return Decoded(flat, index)     # an unwritable cache: decoded for this process only
    return _load(flat_path, index_path) or Decoded(flat, index)


__all__ = ["Decoded", "pixels", "cache_key", "DECODE_VERSION", "MAX_BYTES"]
