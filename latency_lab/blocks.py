"""Networks cut into blocks: the stem, every MBConv block and the head as plain data.

A `BlockModel` is one block of a network on its own (kind, input/output channels, kernel,
expansion, stride, SE channels, activation; for the head also the classes). It has a
`fingerprint` and a `name` like a `NetworkSpec`, and the builder turns it into a one-block
TFLite model with input [1, H, W, c_in], H and W dynamic (`build_keras.build_block_keras`),
so a device measures it through the ordinary `Device.sample(block, input_size, ...)` path and
the protocol and store keep its samples keyed by (block fingerprint, input size) exactly as
they keep a network's by (fingerprint, resolution). The "resolution" of a block point is the
spatial size of the block's *input* feature map.

`network_blocks(spec, resolution)` lists the blocks of a network with their input sizes;
`scaled_space_blocks` lists every distinct block that RBIS-scaled versions of a network can
contain (width steps of +10% of the base width rounded to 4, depth steps of one stride-1 copy
of the stage's last block). Pure functions: nothing here measures.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from latency_lab.complexity import se_channels
from latency_lab.scaling import round4
from latency_lab.spec import NetworkSpec, SpecError, _num

BLOCK_MODEL_KINDS = ("stem", "mbconv", "head")


@dataclass(frozen=True)
class BlockModel:
    """One block of a network as a model of its own.

    stem: c_in=3 -> c_out conv (kernel, stride) + BN + activation.
    mbconv: the MBConv block of `build_keras` (expand, depthwise, SE with `se_channels`
            squeezed channels when > 0, project, residual when stride 1 and c_in == c_out).
    head: 1x1 conv c_in -> c_out + BN + activation, global average pool, dense `num_classes`.
    """

    kind: str
    c_in: int
    c_out: int
    kernel: int = 1
    expansion: float = 1
    stride: int = 1
    se_channels: int = 0
    activation: str = "swish"
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_MODEL_KINDS:
            raise SpecError(f"unknown block kind {self.kind!r}; known: {', '.join(BLOCK_MODEL_KINDS)}")
        if min(self.c_in, self.c_out, self.kernel, self.stride) < 1:
            raise SpecError(f"block {self.to_dict()}: channels, kernel and stride must be positive")

    # The same duck type as NetworkSpec where drivers, the protocol and the store look.
    @property
    def name(self) -> str:
        if self.kind == "stem":
            return f"stem k{self.kernel}s{self.stride} {self.c_in}->{self.c_out} {self.activation}"
        if self.kind == "head":
            return f"head {self.c_in}->{self.c_out} +pool+fc{self.num_classes} {self.activation}"
        return (f"mbconv k{self.kernel}e{_num(self.expansion)}s{self.stride} "
                f"{self.c_in}->{self.c_out} se{self.se_channels} {self.activation}")

    @property
    def input_channels(self) -> int:
        return self.c_in

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["expansion"] = _num(self.expansion)
        return d

    def arch_dict(self) -> dict[str, Any]:
        """What the store keeps as the 'network' JSON of a block point."""
        return {"block": self.to_dict()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.arch_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BlockModel":
        d = d.get("block", d)
        try:
            return cls(kind=str(d["kind"]), c_in=int(d["c_in"]), c_out=int(d["c_out"]),
                       kernel=int(d.get("kernel", 1)), expansion=float(d.get("expansion", 1)),
                       stride=int(d.get("stride", 1)), se_channels=int(d.get("se_channels", 0)),
                       activation=str(d.get("activation", "swish")),
                       num_classes=int(d.get("num_classes", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"not a block description: {type(exc).__name__}: {exc}") from None

    @property
    def fingerprint(self) -> str:
        canon = json.dumps(self.arch_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def output_size(self, size_in: int) -> int:
        """'same' padding: ceil(size / stride); the head pools to 1."""
        return 1 if self.kind == "head" else math.ceil(size_in / self.stride)


BlockPoint = tuple[BlockModel, int]   # a block and its input spatial size


def stem_block(spec: NetworkSpec) -> BlockModel:
    return BlockModel("stem", 3, spec.stem.width, spec.stem.kernel, 1, spec.stem.stride,
                      0, spec.activation)


def mbconv_block(c_in: int, c_out: int, kernel: int, expansion: float, stride: int,
                 se_ratio: float, activation: str) -> BlockModel:
    c_se = se_channels(c_in, se_ratio) if se_ratio > 0 else 0
    return BlockModel("mbconv", c_in, c_out, kernel, expansion, stride, c_se, activation)


def head_block(spec: NetworkSpec, c_in: int) -> BlockModel:
    return BlockModel("head", c_in, spec.head_width, 1, 1, 1, 0, spec.activation, spec.num_classes)


def network_blocks(spec: NetworkSpec, resolution: int) -> list[tuple[str, BlockModel, int]]:
    """(where, block, input size) for the stem, every block (`s{i}.b{j}`) and the head."""
    stem = stem_block(spec)
    out = [("stem", stem, int(resolution))]
    size, c = stem.output_size(int(resolution)), spec.stem.width
    for i, stage in enumerate(spec.stages):
        for j, b in enumerate(stage.blocks):
            blk = mbconv_block(c, stage.width, b.kernel, b.expansion, b.stride, stage.se_ratio,
                               spec.activation)
            out.append((f"s{i}.b{j}", blk, size))
            size, c = blk.output_size(size), stage.width
    out.append(("head", head_block(spec, c), size))
    return out


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


def describe_point(block: BlockModel, size: int) -> str:
    return f"{block.name} at input {size}x{size} (block {block.fingerprint})"


def blocks_by_kind(points: Sequence[BlockPoint]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for b, _ in points:
        counts[b.kind] = counts.get(b.kind, 0) + 1
    return counts
