"""The LUT file: a `Lut` (lut.py) as JSON and back, validated on the way in.

A LUT file is JSON (never pickle): device context, base network, block rows with their
statistics, calibration points and the fitted overhead. `load_lut` validates it (format,
fields, block fingerprints against block descriptions, duplicates) and refuses a file that
was edited by hand or recorded on another device context when one is required.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from latency_lab.fileio import parse_json, read_text, write_atomic
from latency_lab.measure.api import DeviceInfo
from latency_lab.network.blocks import BlockModel, describe_point
from latency_lab.network.scaling import per_stage
from latency_lab.network.spec import NetworkSpec, SpecError, check_resolution, int_field
from latency_lab.tables.lut import (OVERHEAD_MODELS, STATISTICS, BlockRow, CalibrationPoint, Lut,
                                    LutError, Overhead)

LUT_FORMAT = "latency-lab-lut"
LUT_FORMAT_VERSION = 1
_BLOCK_FIELDS = ("fingerprint", "block", "input_size", "latency_ms", "ci_low_ms", "ci_high_ms",
                 "n_samples")


# -- writing -------------------------------------------------------------------------------
def block_row_dict(row: BlockRow) -> dict[str, Any]:
    return {"fingerprint": row.block.fingerprint, "block": row.block.to_dict(),
            "name": row.block.name, "input_size": row.input_size,
            "latency_ms": row.latency_ms, "ci_low_ms": row.ci_low_ms,
            "ci_high_ms": row.ci_high_ms, "n_samples": row.n_samples,
            "p5_ms": None if math.isnan(row.p5_ms) else row.p5_ms,
            "std_ms": None if math.isnan(row.std_ms) else row.std_ms,
            "stop_reason": row.stop_reason}


def overhead_dict(overhead: Overhead) -> dict[str, Any]:
    o = overhead
    return {"model": o.model, "scale": o.scale, "offset_ms": o.offset_ms,
            "loo_rms_pct": o.loo_rms_pct, "loo_max_pct": o.loo_max_pct,
            "n_points": o.n_points, "n_excluded": o.n_excluded}


def lut_to_dict(lut: Lut) -> dict[str, Any]:
    rows = sorted(lut.blocks.values(), key=lambda r: (r.block.kind != "stem",
                                                      r.block.kind == "head", -r.input_size,
                                                      r.block.c_in, r.block.c_out,
                                                      r.block.fingerprint))
    return {
        "format": LUT_FORMAT,
        "format_version": LUT_FORMAT_VERSION,
        "created_at": lut.created_at,
        "statistic": lut.statistic,
        "calibrated_on": lut.calibrated_on,
        "context_key": lut.context.context_key,
        "context": lut.context.to_dict(),
        "network": {"name": lut.network.name, "fingerprint": lut.network.fingerprint,
                    "spec": lut.network.to_dict()},
        "resolutions": list(lut.resolutions),
        "max_width_steps": lut.max_width_steps,
        "max_depth_steps": lut.max_depth_steps,
        "protocol": lut.protocol,
        "overhead": overhead_dict(lut.overhead),
        "calibration": [dict(p.__dict__) for p in lut.calibration],
        "blocks": [block_row_dict(r) for r in rows],
        **({"latency_scale": lut.latency_scale} if lut.latency_scale else {}),
    }


def save_lut(lut: Lut, path: str | Path) -> Path:
    return write_atomic(path, json.dumps(lut_to_dict(lut), indent=1, allow_nan=False) + "\n")


def lut_sha256(lut: Lut) -> str:
    return hashlib.sha256(json.dumps(lut_to_dict(lut), sort_keys=True).encode()).hexdigest()


# -- loading -------------------------------------------------------------------------------
def _num(value: Any, what: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LutError(f"{what} is {value!r}, not a finite number")
    if positive and value <= 0:
        raise LutError(f"{what} is {value!r}, must be positive")
    return float(value)


def _limit(value: Any, network: NetworkSpec, what: str) -> int | list[int]:
    """A step limit as saved: one int, or a list with one int per stage."""
    if isinstance(value, list):
        try:
            return per_stage(value, len(network.stages), what)
        except (SpecError, TypeError, ValueError) as exc:
            raise LutError(f"{what} {value!r}: {exc}") from None
    return int_field(value, what)


def lut_from_dict(d: Any, source: str = "") -> Lut:
    """Validate and build a `Lut` from parsed JSON; LutError naming the first problem."""
    where = f"LUT {source}: " if source else "LUT: "
    try:
        if not isinstance(d, dict) or d.get("format") != LUT_FORMAT:
            raise LutError(f"not a latency-lab LUT (no \"format\": \"{LUT_FORMAT}\")")
        if d.get("format_version") != LUT_FORMAT_VERSION:
            raise LutError(f"format version {d.get('format_version')!r}, this tool reads "
                           f"{LUT_FORMAT_VERSION}")
        missing = [k for k in ("context", "context_key", "network", "resolutions",
                               "max_width_steps", "max_depth_steps", "blocks", "overhead")
                   if k not in d]
        if missing:
            raise LutError(f"lacks key(s) {', '.join(missing)} (truncated or hand-edited?)")
        context = DeviceInfo.from_dict(d["context"])
        if context.context_key != d["context_key"]:
            raise LutError(f"context_key {d['context_key']} does not match its context fields "
                           f"(they hash to {context.context_key}; hand-edited?)")
        network = NetworkSpec.from_dict(d["network"]["spec"])
        if network.fingerprint != d["network"].get("fingerprint"):
            raise LutError(f"base network JSON has fingerprint {network.fingerprint}, the file "
                           f"says {d['network'].get('fingerprint')} (hand-edited?)")
        blocks: dict[tuple[str, int], BlockRow] = {}
        for i, r in enumerate(d["blocks"]):
            lacking = [k for k in _BLOCK_FIELDS if k not in r or r[k] is None]
            if lacking:
                raise LutError(f"block row {i} lacks {', '.join(lacking)}")
            block = BlockModel.from_dict(r["block"])
            if block.fingerprint != r["fingerprint"]:
                raise LutError(f"block row {i}: description hashes to {block.fingerprint}, the "
                               f"row says {r['fingerprint']} (hand-edited?)")
            size = int_field(r["input_size"], f"block row {i} input_size")
            if size < 1:
                raise LutError(f"block row {i} input_size is {size}, must be positive")
            key = (block.fingerprint, size)
            if key in blocks:
                raise LutError(f"block row {i} repeats {describe_point(block, size)}")
            lat = _num(r["latency_ms"], f"block row {i} latency_ms", positive=True)
            lo = _num(r["ci_low_ms"], f"block row {i} ci_low_ms")
            hi = _num(r["ci_high_ms"], f"block row {i} ci_high_ms")
            if not lo <= lat <= hi:
                raise LutError(f"block row {i}: latency {lat} outside its CI [{lo}, {hi}]")
            std, p5 = r.get("std_ms"), r.get("p5_ms")
            blocks[key] = BlockRow(block, size, lat, lo, hi,
                                   int_field(r["n_samples"], f"block row {i} n_samples"),
                                   float("nan") if std is None else _num(std, f"block row {i} std_ms"),
                                   str(r.get("stop_reason", "")),
                                   float("nan") if p5 is None else _num(p5, f"block row {i} p5_ms",
                                                                        positive=True))
        o = d["overhead"]
        if o.get("model") not in OVERHEAD_MODELS:
            raise LutError(f"unknown overhead model {o.get('model')!r}")
        overhead = Overhead(o["model"], _num(o["scale"], "overhead scale", positive=True),
                            _num(o["offset_ms"], "overhead offset_ms"),
                            {k: float(v) for k, v in o.get("loo_rms_pct", {}).items()},
                            {k: float(v) for k, v in o.get("loo_max_pct", {}).items()},
                            int_field(o.get("n_points", 0), "overhead n_points"),
                            int_field(o.get("n_excluded", 0), "overhead n_excluded"))
        calibration = [CalibrationPoint(**p) for p in d.get("calibration", [])]
        statistic = d.get("statistic", "median")
        if statistic not in STATISTICS:
            raise LutError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")
        return Lut(context, network,
                   [check_resolution(int_field(r, "resolution")) for r in d["resolutions"]],
                   _limit(d["max_width_steps"], network, "max_width_steps"),
                   _limit(d["max_depth_steps"], network, "max_depth_steps"), blocks, calibration,
                   overhead, dict(d.get("protocol", {})), str(d.get("created_at", "")), source,
                   statistic, str(d.get("calibrated_on", "")), dict(d.get("latency_scale", {})))
    except LutError as exc:
        raise LutError(where + str(exc)) from None
    except SpecError as exc:
        raise LutError(f"{where}{exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LutError(f"{where}malformed ({type(exc).__name__}: {exc}; truncated or "
                       f"hand-edited?)") from None


def load_lut(path: str | Path, context: DeviceInfo | str | None = None) -> Lut:
    """Read and validate a LUT file; with `context` (a DeviceInfo or context key), refuse a
    LUT recorded in another device context."""
    path = Path(path)
    d = parse_json(read_text(path, "LUT", LutError), f"LUT {path}", LutError)
    lut = lut_from_dict(d, str(path))
    if context is not None:
        want = context.context_key if isinstance(context, DeviceInfo) else str(context)
        if lut.context.context_key != want:
            c = lut.context
            raise LutError(f"LUT {path} was recorded in device context {c.context_key} "
                           f"({c.name}, {c.hardware}, {c.runtime} {c.runtime_version}, "
                           f"{c.threads} thread(s)), not {want}")
    return lut
