"""Where latency-lab keeps its files: the cache (model files, the SQLite store).

`LATENCY_LAB_CACHE` overrides the default, the user's cache directory (platformdirs).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("LATENCY_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("latency-lab"))


def default_store_path() -> Path:
    return cache_dir() / "measurements.sqlite"
