"""Latency sources: where a search reads the latency of a (network, resolution).

A source is parsed from the text a user gives on the command line (`parse_latency_source`):

- a device name (`cpu`, ...): measured live with `latency_lab.measure.protocol.measure_points`
  through the SQLite `Store`, each batch with a reference that puts it on the search's one
  latency scale (`latency_lab.measure.scale`); what the store has is reused only when it
  meets the protocol and is tied to the scale, and said (`live_source.py`);
- `table:PATH` / `lut:PATH`: the replay devices of the same names (`devices/table.py`), a
  recorded latency table or the per-block lookup-table predictor, read through the same
  `DeviceLatency` as a live device (no store: the recorded measurement, CI included, is the
  answer);
- `py:MODULE:FUNCTION[,timeout=SECONDS]`: `FUNCTION(network_dict) -> float ms`, the user's own
  code, loaded alone (`search/pycall.py`: a file or a module of the current directory never
  shadows another import), the dict being the network's JSON form with its `resolution` set.

Several make a chain (`chain.py`): a LUT calibrated to the table before it, a live device on
that table's scale. The interface every source has is `source_base.py`.
"""

from __future__ import annotations

from typing import Sequence

from latency_lab.errors import UserError
from latency_lab.search.chain import ChainSource
from latency_lab.search.live_source import ActorLatency, DeviceLatency, actor_latency
from latency_lab.search.pycall import SourceError
from latency_lab.search.source_base import (LatencySource, PyLatency, check_value,
                                            load_py_callable, network_dict,
                                            provenance_record)


def parse_latency_sources(texts: Sequence[str], scale_table=None, **kw) -> LatencySource:
    """One source, or a `ChainSource` of several tried in order (e.g. table, lut, device),
    on one scale (`chain.py`). `reference`: the base network, whose points are the live
    scale's references; `say`: where notes go (calibration, reuse, levels); `scale_table`: a
    recorded table whose rows of the base network are the live scale's reference values
    (`--latency-scale`: live searches at different loads on one scale)."""
    # the table is read before a device or a store is opened: a table that cannot be read is
    # refused with no file touched (issue 25: it came after, and left a new store)
    table = read_scale_table(str(scale_table)) if scale_table is not None else None
    source = _parse_sources(texts, **kw)
    if table is not None:
        _scale_to(source, table, str(scale_table), kw.get("reference"), kw.get("say"))
    return source


def read_scale_table(path: str):
    """The `--latency-scale` table, or a one-line SourceError (what cannot be read is said
    before a device or a store is opened)."""
    from latency_lab.measure.api import get_device

    try:
        return get_device(f"table:{path}")
    except UserError as exc:
        raise SourceError(f"--latency-scale: {exc}") from None


def _scale_to(source: LatencySource, table, path: str, reference, say) -> None:
    from latency_lab.search.chain import anchor_to_table

    sources = getattr(source, "sources", [source])
    if not any(getattr(s, "scale", None) is not None for s in sources):
        source.close()
        raise SourceError("--latency-scale puts a live device's latencies on a table's scale; "
                          "give a device as --latency")
    if reference is None or not anchor_to_table(sources, table, reference, say):
        source.close()
        raise SourceError(f"--latency-scale {path} has no row of "
                          f"{getattr(reference, 'name', 'the base network')}: the scale's "
                          "references are the base network's rows")


def _parse_sources(texts: Sequence[str], **kw) -> LatencySource:
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise SourceError("no latency source given")
    if len(texts) == 1:
        return parse_latency_source(texts[0], **kw)
    devices = [t for t in texts if t.split(":")[0] not in ("py", "table", "lut")]
    if devices and texts[-1] not in devices or len(devices) > 1:
        raise SourceError("a device can only be the last latency source of a chain (it has "
                          "every network, measuring what the recordings lack)")
    return ChainSource([parse_latency_source(t, **kw) for t in texts], kw.get("reference"),
                       kw.get("say"))


def parse_latency_source(text: str, store_path=None, protocol=None, device_options=None,
                         progress=None, executor=None, reference=None, remeasure=False,
                         say=None) -> LatencySource:
    """`table:PATH`, `lut:PATH`, `py:MODULE:FUNCTION`, or a device name. With an `executor`
    that owns devices (Ray), a live device is opened where it lives, by a device actor.
    `reference`, `remeasure`, `say`: a live device's scale (`live_source.py`)."""
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("py", "table", "lut") and not rest:
        what = "MODULE:FUNCTION" if kind == "py" else "PATH"
        raise SourceError(f"latency source {text!r} lacks its {what}")
    if sep and kind == "py":
        return PyLatency(rest)
    if not text:
        raise SourceError("empty latency source; use a device name, table:PATH, lut:PATH or "
                          "py:MODULE:FUNCTION")
    ray = getattr(executor, "ray", None)     # a RayExecutor: its devices live in actors
    if ray is not None:
        source = actor_latency(ray, text, store_path, protocol, device_options, reference,
                               remeasure, say)
        if source is not None:
            return source
    return DeviceLatency(text, store_path, protocol, device_options, progress, reference,
                         remeasure, say)


__all__ = ["LatencySource", "PyLatency", "DeviceLatency", "ChainSource", "SourceError",
           "parse_latency_source", "parse_latency_sources", "ActorLatency", "actor_latency",
           "load_py_callable", "network_dict", "check_value", "provenance_record",
           "read_scale_table"]
