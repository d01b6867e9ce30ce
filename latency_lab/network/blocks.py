"""Networks cut into blocks, and blocks into layers: the one walk every consumer reads.

`network_blocks(spec, resolution)` is the one walk over a network: the stem, every MBConv
block (`s{i}.b{j}`) and the head, each a `BlockSite` (where it sits, its stage and index, the
`BlockModel`, its input feature-map size). `BlockModel.layers()` is the one statement of what
a block is made of (`Layer`: conv, depthwise conv, squeeze-excite, pool, dense) and
`BlockModel.residual` of when it adds its input. The Keras and torch builders, the direct
TFLite emitter, the complexity counts and the per-block lookup table all read these two and
nothing else, so a new consumer (Net2Net, Zen-Score) writes how to make a `Layer` in its
framework and no copy of the channel, SE, stride and size bookkeeping.

A `BlockModel` is one block of a network on its own (kind, input/output channels, kernel,
expansion, stride, SE channels, activation; for the head also the classes). It has a
`fingerprint` and a `name` like a `NetworkSpec`, and a builder turns it into a one-block
TFLite model with input [1, H, W, c_in], H and W dynamic, so a device measures it through the
ordinary `Device.sample(block, input_size, ...)` path and the protocol and store keep its
samples keyed by (block fingerprint, input size) exactly as they keep a network's by
(fingerprint, resolution). The "resolution" of a block point is the spatial size of the
block's *input* feature map.

`scaling.scaled_space_blocks` lists every distinct block that RBIS-scaled versions of a network can
contain (width steps of +10% of the base width rounded to 4, depth steps of one stride-1 copy
of the stage's last block). Pure functions: nothing here measures.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, Sequence

from latency_lab.network.fields import SpecError, _num, float_field, int_field
from latency_lab.network.memo import IdentityMemo

BLOCK_MODEL_KINDS = ("stem", "mbconv", "head")
LAYER_OPS = ("conv", "dwconv", "se", "pool", "dense")
BN_EPSILON = 1e-3  # keras.applications.efficientnet; every builder uses it


class NetworkLike(Protocol):
    """What the walk reads of a network: a `spec.NetworkSpec`. Named by its fields, not
    imported: a spec checks its own size with counts made from this walk (spec.py imports
    complexity.py, which imports this module), so this module stays below spec.py."""

    resolution: int
    activation: str
    num_classes: int
    head_width: int
    stem: Any           # StemSpec: width, kernel, stride
    stages: Sequence[Any]   # StageSpec: width, depth, se_ratio, blocks


def se_channels(block_in: int, se_ratio: float) -> int:
    """Squeezed channels of an SE module (Keras: max(1, int(filters_in * se_ratio)))."""
    return max(1, int(block_in * se_ratio))


def expanded_channels(block_in: int, expansion: float) -> int:
    return int(round(block_in * expansion))


@dataclass(frozen=True)
class Layer:
    """One layer of a block, in the terms every builder and count uses.

    conv:   k x k convolution without bias + batch norm (+ the activation when `act`)
    dwconv: depthwise k x k convolution without bias + batch norm (+ activation when `act`)
    se:     squeeze-and-excitation on `c_in` (= `c_out`) channels: global average pool, 1x1
            conv to `squeezed` channels (bias, activation), 1x1 conv back (bias, sigmoid),
            multiply with the input
    pool:   global average pool to [1, c] (no weights)
    dense:  fully connected with bias, no activation
    `role` names the layer inside its block (stem, expand, dw, se, project, head, pool,
    classifier); builders name their layers and modules after it.
    """

    op: str
    role: str
    c_in: int
    c_out: int
    kernel: int = 1
    stride: int = 1
    act: bool = True
    squeezed: int = 0

    def output_size(self, size_in: float) -> float:
        """'same' padding: ceil(size / stride); pool and dense leave no spatial size (1)."""
        if self.op in ("pool", "dense"):
            return 1
        return math.ceil(size_in / self.stride)

    @property
    def params(self) -> int:
        """Trainable parameters as Keras counts them (batch norm: gamma and beta)."""
        k2 = self.kernel * self.kernel
        if self.op == "conv":
            return k2 * self.c_in * self.c_out + 2 * self.c_out
        if self.op == "dwconv":
            return k2 * self.c_in + 2 * self.c_in
        if self.op == "se":
            return 2 * self.c_in * self.squeezed + self.squeezed + self.c_in
        if self.op == "dense":
            return self.c_in * self.c_out + self.c_out
        return 0

    def macs_per_pixel(self) -> int:
        """Multiply-accumulates per output pixel (conv, dwconv), or in all (se, dense)."""
        k2 = self.kernel * self.kernel
        return {"conv": k2 * self.c_in * self.c_out, "dwconv": k2 * self.c_in,
                "se": 2 * self.c_in * self.squeezed, "dense": self.c_in * self.c_out,
                "pool": 0}[self.op]

    @property
    def spatial(self) -> bool:
        """Whether its MACs grow with the feature map (convolutions) or not (se, pool, dense)."""
        return self.op in ("conv", "dwconv")

    def macs(self, size_in: float) -> float:
        """MACs at input size `size_in` (batch norm, activations and pooling left out)."""
        out = self.output_size(size_in)
        return self.macs_per_pixel() * (out * out if self.spatial else 1)


@dataclass(frozen=True)
class BlockModel:
    """One block of a network as a model of its own; `layers()` says what it is made of.

    stem: c_in=3 -> c_out conv (kernel, stride) + BN + activation.
    mbconv: expand 1x1 (when the expanded width differs from c_in), depthwise, SE with
            `se_channels` squeezed channels when > 0, project 1x1 without activation,
            residual add when stride 1 and c_in == c_out.
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

    # -- structure ---------------------------------------------------------------------------
    @property
    def c_mid(self) -> int:
        """Channels inside the block (the expanded width of an MBConv block)."""
        return expanded_channels(self.c_in, self.expansion) if self.kind == "mbconv" else self.c_in

    @property
    def residual(self) -> bool:
        """Whether the block adds its input to its output."""
        return self.kind == "mbconv" and self.stride == 1 and self.c_in == self.c_out

    def layers(self) -> tuple[Layer, ...]:
        """The block's layers in order (see `Layer`); the residual add follows when `residual`."""
        if self.kind == "stem":
            return (Layer("conv", "stem", self.c_in, self.c_out, self.kernel, self.stride),)
        if self.kind == "head":
            return (Layer("conv", "head", self.c_in, self.c_out),
                    Layer("pool", "pool", self.c_out, self.c_out, act=False),
                    Layer("dense", "classifier", self.c_out, self.num_classes, act=False))
        mid = self.c_mid
        out = [Layer("conv", "expand", self.c_in, mid)] if mid != self.c_in else []
        out.append(Layer("dwconv", "dw", mid, mid, self.kernel, self.stride))
        if self.se_channels > 0:
            out.append(Layer("se", "se", mid, mid, squeezed=self.se_channels))
        out.append(Layer("conv", "project", mid, self.c_out, act=False))
        return tuple(out)

    def layer_inputs(self, size_in: float) -> list[tuple[Layer, float]]:
        """Each layer with the spatial size of its input."""
        out = []
        for layer in self.layers():
            out.append((layer, size_in))
            size_in = layer.output_size(size_in)
        return out

    @property
    def params(self) -> int:
        return _block_params(self)

    def macs(self, size_in: float) -> float:
        return sum(layer.macs(size) for layer, size in self.layer_inputs(size_in))

    # -- identity: the same duck type as NetworkSpec where drivers, the protocol, the store look
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
        # the fields in order, as `asdict` gave them (5x slower: it deep-copies each value)
        return {"kind": self.kind, "c_in": self.c_in, "c_out": self.c_out,
                "kernel": self.kernel, "expansion": _num(self.expansion),
                "stride": self.stride, "se_channels": self.se_channels,
                "activation": self.activation, "num_classes": self.num_classes}

    def arch_dict(self) -> dict[str, Any]:
        """What the store keeps as the 'network' JSON of a block point."""
        return {"block": self.to_dict()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.arch_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BlockModel":
        d = d.get("block", d)
        try:   # typed fields: a c_in of 16.7 must not become block 16's fingerprint
            return cls(kind=str(d["kind"]), c_in=int_field(d["c_in"], "block c_in"),
                       c_out=int_field(d["c_out"], "block c_out"),
                       kernel=int_field(d.get("kernel", 1), "block kernel"),
                       expansion=float_field(d.get("expansion", 1), "block expansion"),
                       stride=int_field(d.get("stride", 1), "block stride"),
                       se_channels=int_field(d.get("se_channels", 0), "block se_channels"),
                       activation=str(d.get("activation", "swish")),
                       num_classes=int_field(d.get("num_classes", 0), "block num_classes"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"not a block description: {type(exc).__name__}: {exc}") from None

    @property
    def fingerprint(self) -> str:
        return _block_fingerprint(self)

    def output_size(self, size_in: int) -> int:
        """'same' padding: ceil(size / stride); the head pools to 1."""
        return 1 if self.kind == "head" else math.ceil(size_in / self.stride)


# A search builds thousands of specs from a few hundred distinct blocks, and every spec counts
# its parameters (the 2 GiB check) and a LUT fingerprints every block: cached by value (a
# frozen block), these took 0.13 ms a B0 spec and 0.3 ms a B0 block sum without the cache.
@lru_cache(maxsize=1 << 16)
def _block_params(block: BlockModel) -> int:
    return sum(layer.params for layer in block.layers())


@lru_cache(maxsize=1 << 16)
def _block_fingerprint(block: BlockModel) -> str:
    canon = json.dumps(block.arch_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


BlockPoint = tuple[BlockModel, int]   # a block and its input spatial size


@dataclass(frozen=True)
class BlockSite:
    """A block at its place in a network: `where` ("stem", "s{i}.b{j}", "head"), its body
    `stage` and `index` within the stage (None and 0 for stem and head), the block, and the
    spatial `size` of its input at the walk's resolution."""

    where: str
    stage: int | None
    index: int
    block: BlockModel
    size: int

    @property
    def size_out(self) -> int:
        return self.block.output_size(self.size)


def stem_block(spec: NetworkLike) -> BlockModel:
    return BlockModel("stem", 3, spec.stem.width, spec.stem.kernel, 1, spec.stem.stride,
                      0, spec.activation)


def mbconv_block(c_in: int, c_out: int, kernel: int, expansion: float, stride: int,
                 se_ratio: float, activation: str) -> BlockModel:
    """An MBConv block; SE channels follow from its *input* channels (as in Keras)."""
    c_se = se_channels(c_in, se_ratio) if se_ratio > 0 else 0
    return BlockModel("mbconv", c_in, c_out, kernel, expansion, stride, c_se, activation)


def head_block(spec: NetworkLike, c_in: int) -> BlockModel:
    return BlockModel("head", c_in, spec.head_width, 1, 1, 1, 0, spec.activation, spec.num_classes)


_stage_memo = IdentityMemo()


def stage_blocks(c_in: int, stage, activation: str) -> tuple[BlockModel, ...]:
    """A stage's blocks entered with `c_in` channels (the first block takes them, the others
    the stage's width). Kept per stage object: a search's candidates share all stages but one."""
    return _stage_memo.cached(stage, ("blocks", c_in, activation),
                              lambda: _make_stage_blocks(c_in, stage, activation))


def _make_stage_blocks(c_in: int, stage, activation: str) -> tuple[BlockModel, ...]:
    out, c = [], c_in
    for b in stage.blocks:
        out.append(mbconv_block(c, stage.width, b.kernel, b.expansion, b.stride, stage.se_ratio,
                                activation))
        c = stage.width
    return tuple(out)


def network_blocks(spec: NetworkLike, resolution: int | None = None) -> list[BlockSite]:
    """The one walk: stem, every block of every stage, head, at `resolution` (the spec's own
    by default). Input channels, SE channels, stride and feature-map size are decided here."""
    size = int(resolution or spec.resolution)
    stem = stem_block(spec)
    out = [BlockSite("stem", None, 0, stem, size)]
    size, c = stem.output_size(size), spec.stem.width
    for i, stage in enumerate(spec.stages):
        for j, blk in enumerate(stage_blocks(c, stage, spec.activation)):
            out.append(BlockSite(f"s{i}.b{j}", i, j, blk, size))
            size, c = blk.output_size(size), stage.width
    out.append(BlockSite("head", None, 0, head_block(spec, c), size))
    return out


def network_params(spec: NetworkLike) -> int:
    """Trainable parameters: the walk's blocks without their sites (no sizes needed), summed
    per stage from the cache. Every spec counts them when made (the 2 GiB check): 0.19 ms of
    the 0.23 ms a B0 spec took to make, 0.03 ms now."""
    total, c = stem_block(spec).params, spec.stem.width
    for stage in spec.stages:
        total += _stage_params(c, stage, spec.activation)
        c = stage.width
    return total + head_block(spec, c).params


def _stage_params(c_in: int, stage, activation: str) -> int:
    return _stage_memo.cached(stage, ("params", c_in, activation),
                              lambda: sum(b.params for b in stage_blocks(c_in, stage, activation)))


def stage_sites(sites: Sequence[BlockSite]) -> list[list[BlockSite]]:
    """The body's sites grouped by stage, in order (stem and head left out)."""
    body = [s for s in sites if s.stage is not None]
    return [list(group) for _, group in itertools.groupby(body, key=lambda s: s.stage)]


def describe_point(block: BlockModel, size: int) -> str:
    return f"{block.name} at input {size}x{size} (block {block.fingerprint})"
