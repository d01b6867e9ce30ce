"""Candidate resolutions (the end of RBIS step 1): which resolutions before a latency jump get
an RBIS search, and why each one was kept or dropped.

RBIS's cost grows with every candidate (a search per resolution), and real sweeps step often:
an H100 curve of EfficientNet-B0 had 14 jumps over 160..400 px (42 of 61 resolutions became
candidates with one neighbour each side), the host CPU sweeps jump after every multiple of 16.
The RBIS thesis searched four (240, 256, 272, 288 for B0 at the B1 budget). So:

1. `propose`: the last resolution before each upward jump ("before-jump") and, on request,
   `neighbours` grid points each side, with the jump's size;
2. `select`: drop what cannot pay: a jump under `min_jump_pct`, a baseline latency under
   `min_latency_ms`, and, given a latency budget, a resolution where the baseline itself is
   over the budget or leaves no room for one scaling step (the network's cheapest single
   RBIS step, `cheapest_step`: its latency estimated as the baseline's times the step's MAC
   ratio); then rank the rest by the size of the jump after them (before-jump before its
   neighbours) and keep the best `max_candidates` (default 4; 0 keeps all).

Every proposal is a row of the result, `kept` or not, with its `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from latency_lab.errors import JumpInputError
from latency_lab.network.spec import NetworkSpec

DEFAULT_MAX_CANDIDATES = 4   # the RBIS thesis searched four resolutions
COLUMNS = ["resolution", "latency_ms", "kept", "rank", "role", "offset",
           "jump_resolution_before", "jump_pct", "after_step_ms", "reason",
           "jump_z", "jump_ci_low_pct", "jump_ci_high_pct", "place", "decision"]
# What a proposal carries of its jump (jumps.csv's column -> candidates.csv's), when known: a
# candidate says how large and how sure its jump is, and where in the network it comes from.
JUMP_FIELDS = {"z": "jump_z", "ci_low_pct": "jump_ci_low_pct", "ci_high_pct": "jump_ci_high_pct",
               "place": "place"}


@dataclass(frozen=True)
class StepCost:
    """The cheapest single RBIS step of a network at a resolution."""

    ratio: float      # MACs after the step / MACs before
    label: str        # "depth step on stage 6 (+2.9% MACs)"


def cheapest_step(spec: NetworkSpec, resolution: int,
                  stages: tuple[int, ...] | None = None) -> StepCost:
    """The single-stage width or depth step (RBIS's steps, `latency_lab.network.scaling`) on one of
    `stages` (default: the last five, as RBIS) that adds the fewest MACs at `resolution`.

    MACs stand in for latency here because the step's network was never measured; a step is
    a few percent of the network, so the estimate's error is a few percent of that."""
    from latency_lab.network.complexity import macs
    from latency_lab.network.scaling import add_block, default_stages, widen

    base = macs(spec, resolution)
    best: StepCost | None = None
    for i in stages if stages is not None else default_stages(spec):
        stage = spec.stages[i]
        for dim, new in (("width", widen(stage, stage.width, 0)), ("depth", add_block(stage))):
            if new == stage:
                continue     # a width step that rounds back is no step
            ratio = macs(spec.with_stage(i, new), resolution) / base
            if best is None or ratio < best.ratio:
                best = StepCost(ratio, f"{dim} step on stage {i} ({100 * (ratio - 1):+.1f}% MACs)")
    if best is None:
        raise JumpInputError(f"{spec.name} has no scaling step on stages {stages}")
    return best


def propose(jumps: pd.DataFrame, resolutions: np.ndarray, latency_ms: np.ndarray,
            neighbours: int = 0) -> pd.DataFrame:
    """One row per resolution claimed by a jump (`jumps`: latency_lab.sweeps.jumps' table), its
    closest claim first; `resolutions`/`latency_ms` are the sweep's grid and medians."""
    if neighbours < 0:
        raise JumpInputError(f"neighbours must be >= 0, got {neighbours}")
    picked: dict[int, list] = {}
    for row in jumps.itertuples():
        k = int(np.flatnonzero(resolutions == row.resolution_before)[0])
        for off in range(-neighbours, neighbours + 1):
            if not 0 <= k + off < len(resolutions):
                continue
            if off == 0:
                why = f"last resolution before the {row.jump_pct:+.1f}% jump to {row.resolution_after}"
            else:
                side = "after" if off > 0 else "before"
                why = (f"neighbour {off:+d} of {row.resolution_before} ({abs(off)} step(s) {side} "
                       f"the jump{', past the step' if off > 0 else ''})")
            extra = {new: getattr(row, old, np.nan) for old, new in JUMP_FIELDS.items()}
            picked.setdefault(k + off, []).append((abs(off), off, row.resolution_before,
                                                   row.jump_pct, why, extra))
    rows = []
    for i in sorted(picked):
        claims = sorted(picked[i], key=lambda c: c[:4])
        _, off, before, pct, _, extra = claims[0]
        rows.append({"resolution": int(resolutions[i]), "latency_ms": float(latency_ms[i]),
                     "role": "before-jump" if off == 0 else "neighbour", "offset": off,
                     "jump_resolution_before": before, "jump_pct": pct,
                     "reason": "; ".join(c[4] for c in claims), **extra})
    return pd.DataFrame(rows, columns=["resolution", "latency_ms", "role", "offset",
                                       "jump_resolution_before", "jump_pct", "reason",
                                       *JUMP_FIELDS.values()])


def select(proposals: pd.DataFrame, budget_ms: float | None = None,
           min_latency_ms: float | None = None, min_jump_pct: float | None = None,
           max_candidates: int = DEFAULT_MAX_CANDIDATES,
           step_cost: Callable[[int], StepCost] | None = None) -> pd.DataFrame:
    """The policy above applied to `proposals` (`propose`'s table, or a candidates.csv read
    back): every row with `kept`, `rank` (1 = largest jump among those that fit) and why."""
    if max_candidates < 0:
        raise JumpInputError(f"max_candidates must be >= 0 (0: no limit), got {max_candidates}")
    if budget_ms is not None and not budget_ms > 0:
        raise JumpInputError(f"the latency budget must be positive, got {budget_ms}")
    rows, eligible = [], []
    for p in proposals.drop_duplicates("resolution").itertuples(index=False):
        row = {c: getattr(p, c) for c in ("resolution", "latency_ms", "role", "offset",
                                          "jump_resolution_before", "jump_pct")}
        # a candidates.csv written before these columns existed reads back without them
        row.update((c, getattr(p, c, np.nan)) for c in (*JUMP_FIELDS.values(), "decision"))
        row.update(kept=False, rank=np.nan, after_step_ms=np.nan)
        why = str(p.reason).split(" | ")[0]
        lat, res = float(p.latency_ms), int(p.resolution)
        drop = None
        if min_jump_pct is not None and not p.jump_pct >= min_jump_pct:
            drop = f"jump {p.jump_pct:+.1f}% is under --min-jump-pct {min_jump_pct:g}"
        elif min_latency_ms is not None and lat < min_latency_ms:
            drop = f"latency {lat:.3f} ms is under --min-latency-ms {min_latency_ms:g}"
        elif budget_ms is not None and lat > budget_ms:
            drop = f"the baseline ({lat:.3f} ms) is already over the budget {budget_ms:g} ms"
        elif budget_ms is not None and step_cost is not None:
            cost = step_cost(res)
            row["after_step_ms"] = lat * cost.ratio
            if lat * cost.ratio > budget_ms:
                drop = (f"no room for one scaling step: the baseline ({lat:.3f} ms) after its "
                        f"cheapest step, a {cost.label}, is about {lat * cost.ratio:.3f} ms, "
                        f"over the budget {budget_ms:g} ms")
        row["reason"] = f"{why} | dropped: {drop}" if drop else why
        rows.append(row)
        if drop is None:
            eligible.append(row)
    eligible.sort(key=lambda r: (-r["jump_pct"], abs(r["offset"]), r["resolution"]))
    for rank, row in enumerate(eligible, start=1):
        row["rank"] = rank
        if max_candidates == 0 or rank <= max_candidates:
            row["kept"] = True
            row["reason"] += f" | kept: jump size rank {rank} of {len(eligible)}"
        else:
            row["reason"] += (f" | dropped: jump size rank {rank} of {len(eligible)}, only the "
                              f"best {max_candidates} are kept (--max-candidates)")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["kept"] = frame["kept"].astype(bool)
    return frame.sort_values(["kept", "resolution"], ascending=[False, True],
                             ignore_index=True)


def kept(frame: pd.DataFrame) -> list[int]:
    """The kept resolutions of a candidates table, ascending."""
    return sorted(int(r) for r in frame.loc[frame["kept"].astype(bool), "resolution"])


def network_step_cost(spec: NetworkSpec,
                      stages: tuple[int, ...] | None = None) -> Callable[[int], StepCost]:
    """`step_cost` for `select`: the network's cheapest step at each resolution (cached)."""
    cache: dict[int, StepCost] = {}

    def cost(resolution: int) -> StepCost:
        if resolution not in cache:
            cache[resolution] = cheapest_step(spec, resolution, stages)
        return cache[resolution]

    return cost
