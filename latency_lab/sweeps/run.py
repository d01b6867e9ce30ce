"""A resolution sweep: one network over many input resolutions on one device.

`parse_resolutions("160:400:4")` gives the grid (start:stop:step, stop inclusive, or a comma
list); `run_sweep` measures it through the protocol (resumable, cached in the store) and
returns a pandas DataFrame with one row per resolution, which `write_csv` saves.
`cis_from_store` gives a sweep CSV without CIs its CIs back from the raw samples in the store.

pandas is imported where a frame is made or read (0.25-0.3 s): `parse_resolutions` is every
command's resolution syntax, and `search` against a table needs no pandas.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from latency_lab.fileio import atomic_path
from latency_lab.measure.api import Device, Measurement
from latency_lab.measure.protocol import Planner, Progress, Protocol, measure_points
from latency_lab.network.spec import NetworkSpec, SpecError, check_resolution
from latency_lab.measure.store import Store

if TYPE_CHECKING:
    import pandas as pd


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
        check_resolution(start), check_resolution(stop)   # before the range is built
        values = list(range(start, stop + 1, step))
    if not values:
        raise SpecError(f"no resolutions in {text!r}")
    return sorted({check_resolution(v) for v in values})


def run_sweep(device: Device, spec: NetworkSpec, resolutions: list[int], store: Store,
              protocol: Protocol = Protocol(), remeasure: bool = False,
              progress: Progress | None = None, planner: Planner | None = None) -> pd.DataFrame:
    """Measure the sweep; `planner` (e.g. `adaptive.DecisionPlanner`) picks each round's
    points once it has seen a few full rounds, and may stop them all (see protocol.py)."""
    measurements = measure_points(device, [(spec, r) for r in resolutions], store, protocol,
                                  remeasure, progress, planner)
    return to_frame(measurements)


def to_frame(measurements: list[Measurement]) -> pd.DataFrame:
    """One row per point (`Measurement.row`), and its floor (`floor.floor_ms`: the 10th
    percentile of the raw samples, what the jump report reads on a busy machine)."""
    import pandas as pd

    from latency_lab.sweeps.floor import floor_ms

    frame = pd.DataFrame([m.row() for m in measurements])
    frame["floor_ms"] = [floor_ms(m.samples_ms) for m in measurements]
    return frame


LAUNCH_NOTE_MAX = 4   # resolutions named in a note


def launch_notes(frame: pd.DataFrame) -> list[str]:
    """What a sweep's launch-bound check says, for the terminal (`Measurement.row`'s
    `launch_bound`, `execution`, `eager_over_graph` columns; none for drivers without them)."""
    notes = []
    if "launch_bound" in frame.columns:
        bound = frame[frame["launch_bound"].fillna(False).astype(bool)]
        if len(bound):
            shown = ", ".join(str(int(r)) for r in bound["resolution"][:LAUNCH_NOTE_MAX])
            notes.append(f"LAUNCH-BOUND: {len(bound)} of {len(frame)} points measure the host, "
                         f"not the GPU (it waits for Python to launch the kernels): {shown}"
                         f"{' ...' if len(bound) > LAUNCH_NOTE_MAX else ''}; measure with CUDA "
                         f"graphs (-O cuda_graphs=true) or a larger batch")
    if "eager_over_graph" in frame.columns and "execution" in frame.columns:
        graphed = frame[(frame["execution"] == "graph") & frame["eager_over_graph"].notna()]
        if len(graphed) and (graphed["eager_over_graph"] >= 1.25).any():
            ratio = graphed["eager_over_graph"]
            notes.append(f"measured with CUDA graphs: eager execution would have been "
                         f"launch-bound at {(ratio >= 1.25).sum()} of {len(graphed)} points "
                         f"(eager/graph GPU time {ratio.min():.2f}..{ratio.max():.2f}x)")
    return notes


@contextmanager
def sigterm_interrupts():
    """SIGTERM (a `timeout`, a job scheduler) and SIGHUP raise KeyboardInterrupt inside
    (`latency_lab.interrupts`), so a stopped sweep still writes what it measured; the old
    handlers are back after. The CLI's main already handles them; this is for callers of the
    library."""
    from latency_lab import interrupts

    with interrupts.handled():
        yield


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
    return path


IDENTITY_COLUMNS = ("context_key", "fingerprint", "resolution")


def cis_from_store(frame: pd.DataFrame, store: Store) -> tuple[pd.DataFrame, int]:
    """Fill missing `ci_low_ms`/`ci_high_ms` from the raw samples of the store's finished
    measurement with the row's context_key, fingerprint and resolution (the statistics a sweep
    writes: drift-corrected median, cluster bootstrap over rounds). Returns the frame (a copy)
    and the number of rows filled; rows without samples there keep what they had. A frame
    without the identity columns is returned unchanged."""
    import pandas as pd

    if any(c not in frame.columns for c in IDENTITY_COLUMNS):
        return frame, 0
    out = frame.copy()
    for col in ("ci_low_ms", "ci_high_ms"):
        if col not in out.columns:
            out[col] = float("nan")
        out[col] = pd.to_numeric(out[col], errors="coerce")
    filled = 0
    for i, row in out.iterrows():
        if pd.notna(row["ci_low_ms"]) and pd.notna(row["ci_high_ms"]):
            continue
        try:
            hit = store.latest(str(row["context_key"]), str(row["fingerprint"]),
                               int(row["resolution"]))
        except (TypeError, ValueError):
            continue
        if hit is None or hit[1] != "done":
            continue
        m = store.measurement(hit[0])
        if len(m.samples_ms) < 2:
            continue
        stats = m.stats
        out.at[i, "ci_low_ms"], out.at[i, "ci_high_ms"] = stats.ci_low_ms, stats.ci_high_ms
        filled += 1
    return out, filled
