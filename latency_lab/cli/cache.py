"""The `latency-lab cache show|prune` commands: the converted-model cache and its cap."""

from __future__ import annotations

from typing import Optional

import typer

from latency_lab.cli.options import AllModels

from latency_lab.errors import UserError

cache_app = typer.Typer(no_args_is_help=True,
                        help="The converted-model cache: what it holds, and pruning it.")


@cache_app.command("show")
def cache_show(all_models: AllModels = False) -> None:
    """Where the cache is, its size against the cap, and the models (least recently used
    first)."""
    from latency_lab.models import cache as model_cache
    from latency_lab.paths import cache_dir, default_store_path

    items = model_cache.entries()
    cap = model_cache.max_bytes()
    print(f"cache {cache_dir()} (LATENCY_LAB_CACHE); models: {model_cache.describe(items)}; "
          f"cap {cap / 2 ** 20:.0f} MB (LATENCY_LAB_CACHE_MAX_MB)")
    store = default_store_path()
    if store.exists():
        print(f"store {store}: {store.stat().st_size / 2 ** 20:.1f} MB (measurements; never "
              "pruned)")
    shown = items if all_models else items[-10:]
    if len(shown) < len(items):
        print(f"the 10 most recently used of {len(items)} (--all lists every one):")
    import time

    for e in shown:
        age = (time.time() - e.last_used) / 3600
        print(f"  {e.fingerprint}  {e.bytes / 2 ** 20:8.2f} MB  used {age:6.1f} h ago  "
              f"{e.name}")


@cache_app.command("prune")
def cache_prune(
    max_mb: Optional[float] = typer.Option(None, help="Keep at most this many MB of models "
                                                      "(default: the cap)."),
    remove_all: AllModels = False,
) -> None:
    """Remove the least recently used converted models (they are converted again when next
    used; measurements in the store are kept)."""
    from latency_lab.models import cache as model_cache

    if remove_all and max_mb is not None:
        raise UserError("give --all (remove every model) or --max-mb, not both")
    limit = 0 if remove_all else (model_cache.mb_to_bytes(max_mb, "--max-mb", allow_zero=True)
                                   if max_mb is not None else model_cache.max_bytes())
    removed = model_cache.prune(limit, keep_used=False)
    freed = sum(e.bytes for e in removed)
    print(f"removed {len(removed)} models ({freed / 2 ** 20:.1f} MB); left: "
          f"{model_cache.describe(model_cache.entries())}")
