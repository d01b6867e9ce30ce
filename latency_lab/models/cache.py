"""The converted-model cache (`cache_dir()/models`): what it holds, and a cap on its size.

Each converted network or block is FINGERPRINT.tflite plus FINGERPRINT.json (what it is).
An EfficientNet-size network is 20-36 MB, so an hour of searching grew the cache by 416 MB.
The cache is therefore capped, least recently used first: a model's modification time is its
last use (`touch` on every use), and after each newly converted model the least recently used
ones are removed until the models total at most the cap (`LATENCY_LAB_CACHE_MAX_MB`, default
2048 MB). Models this process used are never removed by the automatic cap (a sweep's own
network stays); `latency-lab cache prune` removes down to any size. A removed model is
converted again on its next use (a few seconds); no measurement is lost (those are in the
store, which the cap never touches).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from latency_lab.errors import UserError
from latency_lab.paths import cache_dir

DEFAULT_MAX_MB = 2048.0
_used: set[str] = set()   # fingerprints this process used: the automatic cap keeps them


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    files: tuple[Path, ...]
    bytes: int
    last_used: float
    name: str = ""


def models_dir() -> Path:
    return cache_dir() / "models"


def mb_to_bytes(mb: float, name: str, allow_zero: bool = False) -> int:
    """A size in MB as bytes: a number > 0 (>= 0 with `allow_zero`), `inf` for no cap; NaN
    and 1e308-style sizes no longer overflow int() (issue 25)."""
    import sys

    from latency_lab.errors import check_number

    mb = check_number(mb, name, 0, None, "a size in MB; inf for no cap", low_open=not allow_zero,
                      allow_inf=True)
    return int(min(mb, sys.maxsize / 2 ** 20) * 2 ** 20)


def max_bytes() -> int:
    """The cap (LATENCY_LAB_CACHE_MAX_MB, checked by the CLI before any command runs)."""
    text = os.environ.get("LATENCY_LAB_CACHE_MAX_MB", "")
    try:
        mb = float(text) if text else DEFAULT_MAX_MB
    except ValueError:
        raise UserError(f"LATENCY_LAB_CACHE_MAX_MB={text!r} is not a number of MB") from None
    return mb_to_bytes(mb, f"LATENCY_LAB_CACHE_MAX_MB={text}")


def touch(path: Path) -> None:
    """Mark a cached model as used now (its mtime is its last use)."""
    _used.add(path.stem)
    try:
        os.utime(path)
    except OSError:
        pass   # a read-only cache still works; it only ages wrongly


def entries(root: Path | None = None) -> list[Entry]:
    """Cached models, least recently used first."""
    root = root or models_dir()
    groups: dict[str, list[Path]] = {}
    if root.is_dir():
        for p in root.iterdir():
            if p.is_file() and not p.name.startswith("."):
                groups.setdefault(p.stem, []).append(p)
    out = []
    for fp, files in groups.items():
        stats = [(f, f.stat()) for f in files if f.exists()]
        if not stats:
            continue
        model = [s for f, s in stats if f.suffix == ".tflite"]
        last = max(s.st_mtime for s in model) if model else max(s.st_mtime for _, s in stats)
        name = ""
        meta = root / f"{fp}.json"
        if meta.exists():
            import json

            try:
                d = json.loads(meta.read_text())
                name = str(d.get("name") or d.get("kind") or "")
            except (OSError, ValueError):
                pass
        out.append(Entry(fp, tuple(f for f, _ in stats), sum(s.st_size for _, s in stats), last,
                         name))
    return sorted(out, key=lambda e: e.last_used)


def prune(limit_bytes: int, keep_used: bool = True, root: Path | None = None) -> list[Entry]:
    """Remove the least recently used models until the rest total at most `limit_bytes`;
    with `keep_used`, never those this process used. Returns what was removed."""
    items = entries(root)
    total = sum(e.bytes for e in items)
    removed = []
    for e in items:
        if total <= limit_bytes:
            break
        if keep_used and e.fingerprint in _used:
            continue
        for f in e.files:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        total -= e.bytes
        removed.append(e)
    return removed


def enforce_cap(root: Path | None = None) -> list[Entry]:
    """The automatic cap, run after a new model was written."""
    return prune(max_bytes(), keep_used=True, root=root)


def describe(items: list[Entry]) -> str:
    total = sum(e.bytes for e in items)
    if not items:
        return "no models"
    age = time.time() - items[0].last_used
    return (f"{len(items)} models, {total / 2 ** 20:.1f} MB; least recently used "
            f"{age / 3600:.1f} h ago")
