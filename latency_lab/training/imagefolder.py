"""Image-folder data sets: one sub-folder per class, PNG/JPEG images, read with Pillow.

`scan(DATA_DIR)` lists a data set and checks it once:

- `DATA/train/<class>/...` and `DATA/val/<class>/...` when `train/` exists (the class sets
  must match); `DATA/<class>/...` otherwise, split per class by a seeded shuffle
  (`val_fraction`, `split_seed`), so that the split is the same on every machine;
- images are files ending in .png, .jpg or .jpeg (any case), found recursively; other files
  are ignored; every image is decoded once, and the unreadable ones (truncated, not an image)
  are left out with a warning naming them and their count. The check is cached per file
  listing in the cache directory, so a second scan only lists the folder;
- only regular files are read (issue 25): a FIFO named `x.png` is never opened (opening it
  blocked `dataset show` and `train:` forever), nor a socket or a device node; a link is
  followed once (a folder reached twice, as through a link loop, is not listed again; a
  dangling link is left out); a name that is not UTF-8 is left out (it cannot be written to
  the check's cache or a fingerprint as text); an image of more pixels than Pillow's
  decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, 89 Mpx) is left out before decoding.
  Each is named in the warning with its reason, and counts as unreadable;
- one clear error (`DataError`) for a missing or empty folder, fewer than two classes, a
  class with no images, class sets that differ between train/ and val/, or a data set in
  which more than `MAX_BAD_FRACTION` of the images cannot be read.

The data set `fingerprint` hashes what was read: every used file's split, class, relative
path and size, so that a changed, added or removed image, or another split, gives another
fingerprint (and another evaluator key for accuracies and trained weights). Decoding, cropping
and resizing happen in DataLoader workers (`latency_lab.training.data`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latency_lab.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_BAD_FRACTION = 0.1
CHECK_VERSION = 1


class DataError(UserError):
    """A data folder that cannot be used for training."""


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]          # (path relative to root, class index)
    val: tuple[tuple[str, int], ...]
    split: str                                   # "folders" or "seeded(fraction, seed)"
    fingerprint: str
    skipped: tuple[tuple[str, str], ...] = field(default=())   # (relative path, reason)

    def describe(self) -> str:
        return (f"{self.root} ({len(self.classes)} classes, {len(self.train)} train / "
                f"{len(self.val)} val images, split {self.split}, fingerprint "
                f"{self.fingerprint})")

    def warning(self, show: int = 5) -> str | None:
        """One line naming the unreadable images left out, or None."""
        if not self.skipped:
            return None
        named = ", ".join(f"{p} ({why})" for p, why in self.skipped[:show])
        more = f" and {len(self.skipped) - show} more" if len(self.skipped) > show else ""
        return (f"{len(self.skipped)} unreadable image(s) left out of {self.root}: "
                f"{named}{more}")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:     # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def shown(path) -> str:
    """A path as text that prints anywhere: bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _class_dirs(folder: Path) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for c in classes:
        if not _utf8(c.name):
            raise DataError(f"class folder {shown(c)} has a name that is not UTF-8 text: "
                            "rename it (class names are written to results)")
    return classes


Skipped = list[tuple[Path, str]]


def _images(folder: Path, skipped: Skipped, seen: set | None = None) -> list[Path]:
    """The image files under `folder`, in os.walk's order (files of a folder, sorted, then its
    sub-folders, sorted): regular files only, each folder once (links followed once); what
    is left out goes to `skipped` with its reason. Nothing is opened, only stat'ed."""
    import stat

    seen = set() if seen is None else seen
    try:
        st = os.stat(folder)
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skipped.append((folder, exc.strerror or str(exc)))
        return []
    if (st.st_dev, st.st_ino) in seen:     # reached again through a link: listed once
        return []
    seen.add((st.st_dev, st.st_ino))
    files, dirs = [], []
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir()            # follows links
        except OSError:
            is_dir = False
        (dirs if is_dir else files).append(e)
    found = []
    for e in files:
        if not e.name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        path = Path(e.path)
        if not _utf8(e.name):
            skipped.append((path, "name not UTF-8"))
            continue
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            skipped.append((path, f"dangling link to {shown(os.readlink(path))}"
                            if path.is_symlink() else "gone"))
            continue
        except OSError as exc:             # a link loop, no permission
            skipped.append((path, exc.strerror or str(exc)))
            continue
        if stat.S_ISREG(mode):
            found.append(path)
        else:
            skipped.append((path, "not a regular file (a FIFO, socket or device): not opened"))
    for e in dirs:
        if not _utf8(e.name):
            skipped.append((Path(e.path), "folder name not UTF-8"))
            continue
        found += _images(Path(e.path), skipped, seen)
    return found


def _listing(root: Path, split_dirs: dict[str, Path], skipped: Skipped
             ) -> dict[str, dict[str, list[Path]]]:
    """{split: {class: [image paths]}}, erroring on empty classes and class-less folders;
    files left out go to `skipped`."""
    out = {}
    for split, folder in split_dirs.items():
        classes = _class_dirs(folder)
        if not classes:
            raise DataError(f"{folder} has no class folders (expected one sub-folder per class "
                            f"holding .png/.jpg images)")
        out[split] = {}
        for c in classes:
            images = _images(c, skipped)
            if not images:
                raise DataError(f"class {c.name!r} ({c}) has no images "
                                f"({'/'.join(IMAGE_EXTENSIONS)})"
                                + (f"; left out: {shown(skipped[-1][0])} ({skipped[-1][1]})"
                                   if skipped and c in skipped[-1][0].parents else ""))
            out[split][c.name] = images
    return out


def _check_images(root: Path, paths: list[Path]) -> dict[str, str]:
    """{relative path: reason} of the images Pillow cannot decode; cached per listing."""
    from latency_lab.paths import cache_dir

    listing = sorted((str(p.relative_to(root)), p.stat().st_size) for p in paths)
    key = hashlib.sha256(json.dumps([CHECK_VERSION, str(root.resolve()), listing])
                         .encode()).hexdigest()[:24]
    cached = cache_dir() / "datasets" / f"check-{key}.json"
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass
    bad = {}
    for p in paths:
        reason = image_problem(p)
        if reason:
            bad[str(p.relative_to(root))] = reason
    try:
        from latency_lab.fileio import write_atomic

        write_atomic(cached, json.dumps(bad))
    except UserError:
        pass        # an unwritable cache only costs the next scan its time
    return bad


def image_problem(path: Path) -> str | None:
    """Why Pillow cannot give RGB pixels for `path`, or None. Only a regular file is opened,
    and one of more than Pillow's bomb limit of pixels is refused before it is decoded."""
    import stat
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "not a regular file (a FIFO, socket or device): not opened"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:    # Pillow checks the size here, before decoding
                im.convert("RGB").load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        import re

        size = re.search(r"\((\d+) pixels\)", str(exc))
        return (f"too large: {int(size.group(1)) if size else 0:,d} pixels, more than "
                f"{Image.MAX_IMAGE_PIXELS:,d} (Pillow's decompression-bomb limit)")
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError) as exc:   # truncated or corrupt data
        text = str(exc).split("\n")[0]
        return "truncated" if "truncated" in text else text or type(exc).__name__
    return None


def _seeded_split(per_class: dict[str, list[Path]], fraction: float, seed: int):
    train, val = {}, {}
    for i, (name, paths) in enumerate(sorted(per_class.items())):
        order = np.random.default_rng([seed, i]).permutation(len(paths))
        n_val = min(len(paths) - 1, max(1, round(len(paths) * fraction))) if len(paths) > 1 else 0
        val[name] = [paths[j] for j in sorted(order[:n_val])]
        train[name] = [paths[j] for j in sorted(order[n_val:])]
    return train, val


def scan(root: str | Path, val_fraction: float = 0.2, split_seed: int = 0) -> ImageFolder:
    """List, check and fingerprint the image folder at `root` (see the module docstring)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data folder {root} is not a directory")
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    train_dir, val_dir = root / "train", root / "val"
    skipped: Skipped = []
    if train_dir.is_dir():
        if not val_dir.is_dir():
            raise DataError(f"{root} has train/ but no val/: add val/, or put the class "
                            f"folders directly in {root} for a seeded split")
        listing = _listing(root, {"train": train_dir, "val": val_dir}, skipped)
        only_train = sorted(set(listing["train"]) - set(listing["val"]))
        only_val = sorted(set(listing["val"]) - set(listing["train"]))
        if only_train or only_val:
            raise DataError(f"class folders differ between {train_dir} and {val_dir}: "
                            f"only in train: {only_train or 'none'}; only in val: "
                            f"{only_val or 'none'}")
        split = "folders"
    else:
        if val_dir.is_dir():
            raise DataError(f"{root} has val/ but no train/")
        listing = _listing(root, {"all": root}, skipped)
        train, val = _seeded_split(listing["all"], val_fraction, split_seed)
        listing = {"train": train, "val": val}
        split = f"seeded(val_fraction={val_fraction:g}, seed={split_seed})"
    classes = tuple(sorted(listing["train"]))
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s); a classifier needs two "
                        f"or more")
    every = [p for split_map in listing.values() for ps in split_map.values() for p in ps]
    bad = _check_images(root, every)
    bad.update((shown(p.relative_to(root)), why) for p, why in skipped)
    if len(bad) > MAX_BAD_FRACTION * (len(every) + len(skipped)):
        example = ", ".join(f"{p} ({why})" for p, why in sorted(bad.items())[:3])
        raise DataError(f"{len(bad)} of {len(every) + len(skipped)} images in {root} cannot be read "
                        f"(e.g. {example}); is this an image folder?")
    items: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    digest = hashlib.sha256(f"{split}\n".encode())
    for part in ("train", "val"):
        for label, name in enumerate(classes):
            good = [p for p in listing[part].get(name, []) if str(p.relative_to(root)) not in bad]
            if part == "train" and not good:
                raise DataError(f"class {name!r} has no readable training images")
            for p in good:
                rel = str(p.relative_to(root))
                items[part].append((rel, label))
                digest.update(f"{part}\t{name}\t{rel}\t{p.stat().st_size}\n".encode())
    if not items["val"]:
        raise DataError(f"{root}: no validation images (too few images for a split)")
    return ImageFolder(root, classes, tuple(items["train"]), tuple(items["val"]), split,
                       digest.hexdigest()[:16], tuple(sorted(bad.items())))


__all__ = ["ImageFolder", "DataError", "scan", "image_problem", "IMAGE_EXTENSIONS"]
