"""A resolution sweep: one network over many input resolutions on one device.

`parse_resolutions("160:400:4")` gives the grid (start:stop:step, stop inclusive, or a comma
list); `run_sweep` measures it through the protocol (resumable, cached in the store) and
returns a pandas DataFrame with one row per resolution, which `write_csv` saves.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from latency_lab.measure import Device, Measurement
from latency_lab.protocol import Progress, Protocol, measure_points
from latency_lab.spec import NetworkSpec, SpecError, check_resolution
from latency_lab.store import Store


def parse_resolutions(text: str) -> list[int]:
    """'160:400:4' (inclusive) or '224,240,256' -> sorted unique resolutions, each checked."""
    text = text.strip()
    try:
        parts = [int(p) for p in text.split(":")] if ":" in text else None
        values = None if parts else [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise SpecError(f"malformed resolutions {text!r}: use start:stop:step or a comma list") from None
    if parts is not None:
        if len(parts) not in (2, 3):
            raise SpecError(f"malformed resolutions {text!r}: use start:stop:step or a comma list")
        start, stop, step = parts[0], parts[1], (parts[2] if len(parts) == 3 else 4)
        if step <= 0 or stop < start:
            raise SpecError(f"resolution range {text!r}: need start <= stop and a positive step")
        values = list(range(start, stop + 1, step))
    if not values:
        raise SpecError(f"no resolutions in {text!r}")
    return sorted({check_resolution(v) for v in values})


def run_sweep(device: Device, spec: NetworkSpec, resolutions: list[int], store: Store,
              protocol: Protocol = Protocol(), remeasure: bool = False,
              progress: Progress | None = None) -> pd.DataFrame:
    measurements = measure_points(device, [(spec, r) for r in resolutions], store, protocol,
                                  remeasure, progress)
    return to_frame(measurements)


def to_frame(measurements: list[Measurement]) -> pd.DataFrame:
    return pd.DataFrame([m.row() for m in measurements])


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.4f")
    return path
