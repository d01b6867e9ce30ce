"""Pure scaling functions on `NetworkSpec`s: rounding rules, width/depth steps, uniform scaling.

Every function here takes a spec and returns a new one; nothing is measured or cached. The
search strategies in `search/` (RBIS, compound, fast, ResNet-RS) are built from these.
"""

from __future__ import annotations

import math
from dataclasses import replace

from latency_lab.network.spec import NetworkSpec, StageSpec


def round_filters_efficientnet(filters: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding (keras.applications.efficientnet.round_filters).

    Nearest multiple of `divisor`, at least `divisor`, never more than 10% below `filters`.
    """
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def round_repeats_efficientnet(repeats: int, depth_mult: float) -> int:
    """EfficientNet's depth rounding: ceil(depth_mult * repeats)."""
    return int(math.ceil(depth_mult * repeats))


def round_filters_pycls(filters: float) -> int:
    """pycls's channel rounding (pycls/models/scaler.py): max(1, round(filters / 8)) * 8.

    Python's round (halves to even), as pycls uses it.
    """
    return max(1, round(filters / 8)) * 8


def round_repeats_pycls(repeats: int, depth_mult: float) -> int:
    """pycls's depth rounding (pycls/models/scaler.py): max(1, round(depth_mult * repeats))."""
    return max(1, round(depth_mult * repeats))


def round_resolution(x: float, multiple: int = 4) -> int:
    """Nearest multiple of `multiple`, Python's round (pycls: round(im_size * r / 4) * 4)."""
    return int(round(x / multiple)) * multiple


def round4(x: float) -> int:
    """Nearest multiple of 4, halves up: 4 * floor(x / 4 + 0.5) (RBIS width steps)."""
    return 4 * int(math.floor(x / 4 + 0.5))


def set_depth(stage: StageSpec, depth: int) -> StageSpec:
    """A stage cut or grown to `depth` blocks; new blocks copy the last one with stride 1."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    blocks = stage.blocks[:depth]
    extra = replace(stage.blocks[-1], stride=1)
    blocks = blocks + (extra,) * (depth - len(blocks))
    return replace(stage, blocks=blocks)


def scale_uniform(spec: NetworkSpec, width_mult: float, depth_mult: float, resolution: int,
                  round_filters=round_filters_efficientnet, name: str | None = None,
                  round_repeats=round_repeats_efficientnet) -> NetworkSpec:
    """Scale every stage (and stem and head) alike, as EfficientNet's compound scaling does."""
    stages = tuple(
        set_depth(replace(s, width=round_filters(s.width * width_mult)),
                  round_repeats(s.depth, depth_mult))
        for s in spec.stages
    )
    return replace(spec, name=name or spec.name, stages=stages,
                   stem=replace(spec.stem, width=round_filters(spec.stem.width * width_mult)),
                   head_width=round_filters(spec.head_width * width_mult),
                   resolution=int(resolution))


DEFAULT_N_STAGES = 5    # the RBIS thesis scales five body stages (C(6, 2) = 15 pairs per iteration)


def default_stages(spec: NetworkSpec) -> tuple[int, ...]:
    """The body stages RBIS scales unless told otherwise: the last five."""
    n = len(spec.stages)
    return tuple(range(max(0, n - DEFAULT_N_STAGES), n))


def add_block(stage: StageSpec) -> StageSpec:
    """RBIS depth step: one more block, a copy of the stage's last block with stride 1."""
    return set_depth(stage, stage.depth + 1)


def widen(stage: StageSpec, base_width: int, steps_taken: int) -> StageSpec:
    """RBIS width step: width becomes round4(base_width * (1 + 0.1 * (steps_taken + 1)))."""
    return replace(stage, width=round4(base_width * (1 + 0.1 * (steps_taken + 1))))


__all__ = ["round_filters_efficientnet", "round_repeats_efficientnet", "round_filters_pycls",
           "round_repeats_pycls", "round_resolution", "round4",
           "set_depth", "scale_uniform", "add_block", "widen", "default_stages",
           "DEFAULT_N_STAGES"]
