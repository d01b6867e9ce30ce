"""Fashion-MNIST as an image folder: real images for the training evaluators, from the system.

Fashion-MNIST (Xiao, Rasul and Vollgraf, Zalando SE, 2017; MIT licence) has 60,000 training
and 10,000 test images of clothing, 28x28 grey, in 10 balanced classes. Debian ships it as the
package `dataset-fashion-mnist`, four gzipped IDX files under `DEFAULT_SOURCE`, so it installs
here without a download from anywhere but the system's package mirror.

`export(out, ...)` writes the folder the training evaluators read (`imagefolder.scan`):
`train/` from the training file, `val/` from the test file, one folder per class named
`<label>-<name>` (so that the sorted folder order is the label order), each image a grey PNG
named by its index in the source file; the network's input channels all get the grey value
(the reader converts to RGB). `--train-per-class N` / `--val-per-class M` take a seeded
random N (M) of each class (the order of the source file is kept), for a data set sized to a
CPU. A manifest (`fashion-mnist.json`: source files and their SHA-256, counts, seed) makes
the export idempotent: an --out holding the same manifest is left as it is. The folder is
written whole or not at all (`fileio.atomic_dir`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from latency_lab.errors import UserError
from latency_lab.fileio import atomic_dir
from latency_lab.training.idx import read_idx

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = ("t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle-boot")
MANIFEST = "fashion-mnist.json"
EXPORT_VERSION = 1
INSTALL = (f"install it with `apt-get install -y {PACKAGE}` (without root: `apt-get download "
           f"{PACKAGE} && dpkg-deb -x {PACKAGE}_*.deb pkg`, then --source "
           f"pkg{DEFAULT_SOURCE})")


class FashionMnistError(UserError):
    """Fashion-MNIST not found, or an export that cannot be made."""


def find_file(source: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (source / name).is_file():
            return source / name
    return None


def locate(source: str | Path | None = None) -> dict[str, tuple[Path, Path]]:
    """{split: (images file, labels file)}; one line saying how to get them when missing."""
    given = source is not None
    folder = Path(source).expanduser() if given else DEFAULT_SOURCE
    found, missing = {}, []
    for split, stems in FILES.items():
        paths = [find_file(folder, s) for s in stems]
        missing += [s for s, p in zip(stems, paths) if p is None]
        found[split] = tuple(paths)
    if missing:
        if given:
            raise FashionMnistError(f"--source {folder} lacks {missing[0]}(.gz): give the folder "
                                    f"holding the four Fashion-MNIST IDX files (Debian's {PACKAGE} "
                                    f"puts them in {DEFAULT_SOURCE})")
        raise FashionMnistError(f"Fashion-MNIST is not installed ({DEFAULT_SOURCE} lacks "
                                f"{missing[0]}.gz): {INSTALL}")
    return found


def available(source: str | Path | None = None) -> bool:
    try:
        locate(source)
    except FashionMnistError:
        return False
    return True


def load_split(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) labels of one split, checked against each other."""
    x, y = read_idx(images, 3), read_idx(labels, 1)
    if len(x) != len(y):
        raise FashionMnistError(f"{images} holds {len(x)} images but {labels} {len(y)} labels")
    if len(y) and int(y.max()) >= len(CLASSES):
        raise FashionMnistError(f"{labels} has label {int(y.max())}; Fashion-MNIST's are "
                                f"0..{len(CLASSES) - 1}")
    return x, y


def pick(labels: np.ndarray, per_class: int | None, seed: int, split: str) -> np.ndarray:
    """Indices of a seeded random `per_class` of each class (all when None), in file order."""
    if per_class is None:
        return np.arange(len(labels))
    chosen = []
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise FashionMnistError(f"class {c} ({CLASSES[c]}) has {len(idx)} {split} images, "
                                    f"fewer than the {per_class} asked for")
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, c])
        chosen.append(idx[rng.choice(len(idx), per_class, replace=False)])
    return np.sort(np.concatenate(chosen))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_counts(train_per_class: int | None, val_per_class: int | None) -> None:
    for name, n in (("--train-per-class", train_per_class), ("--val-per-class", val_per_class)):
        if n is not None and n < 1:
            raise FashionMnistError(f"{name} must be at least 1, got {n} (leave it out for "
                                    f"every image)")


def export(out: str | Path, source: str | Path | None = None, train_per_class: int | None = None,
           val_per_class: int | None = None, seed: int = 0, progress=None) -> Path:
    """Write the image folder (see the module docstring); returns `out`."""
    from PIL import Image

    check_counts(train_per_class, val_per_class)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FashionMnistError(f"--out {out} exists and is not a directory")
    files = locate(source)
    manifest = {"data_set": "Fashion-MNIST", "version": EXPORT_VERSION, "seed": seed,
                "train_per_class": train_per_class, "val_per_class": val_per_class,
                "classes": list(CLASSES),
                "sources": {split: {p.name: _sha256(p) for p in paths}
                            for split, paths in files.items()}}
    if out.is_dir() and any(out.iterdir()):
        try:
            old = json.loads((out / MANIFEST).read_text())
            same = {k: v for k, v in old.items() if not k.endswith("_images")} == manifest
        except (OSError, ValueError):
            same = False
        if same:
            return out
        raise FashionMnistError(f"--out {out} exists and holds something else; give a new or "
                                f"empty directory")
    counts = {"train": train_per_class, "val": val_per_class}
    chosen = {}
    for split, (images, labels) in files.items():
        x, y = load_split(images, labels)
        chosen[split] = (x, y, pick(y, counts[split], seed, split))
    total = sum(len(idx) for _, _, idx in chosen.values())
    done = 0
    with atomic_dir(out) as tmp:
        for split, (x, y, idx) in chosen.items():
            for c, name in enumerate(CLASSES):
                (tmp / split / f"{c}-{name}").mkdir(parents=True)
            for i in idx:
                Image.fromarray(x[i]).save(
                    tmp / split / f"{y[i]}-{CLASSES[y[i]]}" / f"{i:05d}.png")
                done += 1
                if progress:
                    progress(done, total)
            manifest[f"{split}_images"] = int(len(idx))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


__all__ = ["export", "locate", "available", "load_split", "pick", "FashionMnistError",
           "DEFAULT_SOURCE", "CLASSES", "PACKAGE", "MANIFEST"]
