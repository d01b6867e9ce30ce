"""Pure scaling functions on `NetworkSpec`s: rounding rules, width/depth steps, uniform scaling.

Every function here takes a spec and returns a new one; nothing is measured or cached. The
search strategies in `search/` (RBIS, compound, fast, ResNet-RS) are built from these.
`scaled_space_blocks` lists every block that RBIS-scaled versions of a network can contain (the
per-block LUT measures those); `scaled_variant` and `random_scaled` make networks of that space.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Iterable, Sequence

from latency_lab.network.blocks import (BlockModel, BlockPoint, head_block, mbconv_block,
                                        stem_block)
from latency_lab.network.fields import SpecError
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
           "set_depth", "scale_uniform", "add_block", "widen", "default_stages", "contains",
           "DEFAULT_N_STAGES"]


def width_options(base_width: int, max_width_steps: int) -> list[int]:
    """Widths a stage can have after 0..max_width_steps RBIS width steps (scaling.widen)."""
    return sorted({base_width} | {round4(base_width * (1 + 0.1 * k))
                                  for k in range(1, max_width_steps + 1)})


def per_stage(limit, n_stages: int, what: str) -> list[int]:
    """A step limit as one non-negative int per stage: an int applies to every stage."""
    values = [int(limit)] * n_stages if isinstance(limit, int) else [int(v) for v in limit]
    if len(values) != n_stages:
        raise SpecError(f"{what}: give one number, or one per stage ({n_stages}), not "
                        f"{len(values)}")
    if any(v < 0 for v in values):
        raise SpecError(f"{what} must be non-negative")
    return values


def scaled_variant(spec: NetworkSpec, width_steps: Sequence[int], depth_steps: Sequence[int],
                   name: str | None = None) -> NetworkSpec:
    """`spec` with stage i widened by width_steps[i] RBIS width steps and deepened by
    depth_steps[i] blocks (scaling.widen / set_depth), as the RBIS search produces them."""
    if len(width_steps) != len(spec.stages) or len(depth_steps) != len(spec.stages):
        raise SpecError(f"need one width and one depth step count per stage ({len(spec.stages)})")
    stages = []
    for stage, kw, kd in zip(spec.stages, width_steps, depth_steps):
        s = widen(stage, stage.width, kw - 1) if kw > 0 else stage
        stages.append(set_depth(s, stage.depth + kd))
    tag = "w" + "".join(map(str, width_steps)) + "-d" + "".join(map(str, depth_steps))
    return replace(spec, name=name or f"{spec.name}-{tag}", stages=tuple(stages))


def random_scaled(spec: NetworkSpec, max_width_steps, max_depth_steps,
                  rng: random.Random) -> NetworkSpec:
    """A random point of the scaled space that `scaled_space_blocks` covers (limits: one
    number for every stage, or one per stage)."""
    n = len(spec.stages)
    w = per_stage(max_width_steps, n, "max width steps")
    d = per_stage(max_depth_steps, n, "max depth steps")
    return scaled_variant(spec, [rng.randint(0, k) for k in w], [rng.randint(0, k) for k in d])


def space_size(spec: NetworkSpec, resolutions: Iterable[int], max_width_steps,
               max_depth_steps) -> int:
    """How many (block, input size) points `scaled_space_blocks` can list, at most, counted
    without making a block: a LUT's size is known (and bounded) before any work. Listing the
    space of `--max-width-steps 100000` took minutes before this (issue 25)."""
    n = len(spec.stages)
    w_steps = per_stage(max_width_steps, n, "max width steps")
    d_steps = per_stage(max_depth_steps, n, "max depth steps")
    options = [len(width_options(s.width, k)) if k <= 10_000 else k + 1
               for s, k in zip(spec.stages, w_steps)]
    per_res, inputs = 1, 1                      # the stem; its output width is fixed
    for stage, opts, d in zip(spec.stages, options, d_steps):
        later = len({(b.kernel, b.expansion) for b in stage.blocks[1:]}) + (d > 0)
        per_res += inputs * opts + later * opts
        inputs = opts
    per_res += inputs                           # the head, one per last-stage width
    return per_res * len({int(r) for r in resolutions})


def scaled_space_blocks(spec: NetworkSpec, resolutions: Iterable[int], max_width_steps,
                        max_depth_steps) -> list[BlockPoint]:
    """Every distinct (block, input size) that a scaled version of `spec` can contain.

    Scaled versions: each stage independently widened by 0..max_width_steps RBIS width steps
    and deepened by 0..max_depth_steps stride-1 copies of its last block, at each resolution
    (each limit one number for all stages or one per stage; any depth step > 0 covers every
    depth, since the added copies are all one block).
    Stem and head width stay as in `spec` (the head's input follows the last stage's width).
    A stage's first block takes the previous stage's width (any of its options) as input;
    its other blocks, and the added copies, map the stage's width to itself.
    """
    n = len(spec.stages)
    w_steps = per_stage(max_width_steps, n, "max width steps")
    d_steps = per_stage(max_depth_steps, n, "max depth steps")
    options = [width_options(s.width, k) for s, k in zip(spec.stages, w_steps)]
    seen: dict[tuple[str, int], BlockPoint] = {}

    def add(block: BlockModel, size: int) -> None:
        seen.setdefault((block.fingerprint, size), (block, size))

    for res in sorted({int(r) for r in resolutions}):
        stem = stem_block(spec)
        add(stem, res)
        size, inputs = stem.output_size(res), [spec.stem.width]
        for i, stage in enumerate(spec.stages):
            later = list(stage.blocks[1:])
            if d_steps[i] > 0:
                later.append(stage.blocks[-1])   # add_block: a stride-1 copy of the last block
            first = stage.blocks[0]
            for c_in in inputs:
                for c_out in options[i]:
                    add(mbconv_block(c_in, c_out, first.kernel, first.expansion, first.stride,
                                     stage.se_ratio, spec.activation), size)
            size = math.ceil(size / first.stride)
            for b in later:
                for c in options[i]:
                    add(mbconv_block(c, c, b.kernel, b.expansion, 1, stage.se_ratio,
                                     spec.activation), size)
            inputs = options[i]
        for c_in in inputs:
            add(head_block(spec, c_in), size)
    return list(seen.values())


def blocks_by_kind(points: Sequence[BlockPoint]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for b, _ in points:
        counts[b.kind] = counts.get(b.kind, 0) + 1
    return counts


def contains(big: NetworkSpec, small: NetworkSpec) -> bool:
    """True when `big` is `small` grown and nothing shrunk: the same stages, each at least as
    wide and as deep (its first blocks the same), stem and head at least as wide, the same
    classes and activation, and not the same network. A width or depth step of RBIS, or any
    path of them, gives such a pair; a latency that falls along one is a measurement's noise or
    a prediction's error, never the network's (search/calibration.py keeps predictions
    monotone in it, benchmarks/check_monotone.py checks committed traces)."""
    if (len(big.stages) != len(small.stages) or big.num_classes != small.num_classes
            or big.activation != small.activation or big.fingerprint == small.fingerprint
            or big.stem.width < small.stem.width or big.head_width < small.head_width
            or (big.stem.kernel, big.stem.stride) != (small.stem.kernel, small.stem.stride)):
        return False
    for b, s in zip(big.stages, small.stages):
        if (b.width < s.width or b.depth < s.depth or b.kind != s.kind
                or b.se_ratio != s.se_ratio or b.blocks[:s.depth] != s.blocks):
            return False
    return True
