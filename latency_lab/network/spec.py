"""Network specs as plain data: stem, body stages of MBConv blocks, head.

A `NetworkSpec` is the one description of a network that every other part of the tool
(builders, complexity counts, devices, the store, the search) reads. It round-trips through
JSON and has a stable `fingerprint`: the hash of the canonical JSON of the *architecture*,
i.e. everything except the display `name` and the input `resolution`. Latencies and
accuracies are keyed by (fingerprint, resolution), so one converted model serves a whole
resolution sweep.

JSON form (other tools read these keys)::

    {"name": "...", "resolution": 224, "num_classes": 1000, "activation": "swish",
     "stem": {"width": 32, "kernel": 3, "stride": 2},
     "head": {"width": 1280},
     "stages": [{"kind": "mbconv", "width": 16, "depth": 1, "kernel": 3, "expansion": 1,
                 "stride": 1, "se_ratio": 0.25,
                 "blocks": [{"kernel": 3, "expansion": 1, "stride": 1}]}, ...]}

A stage's `kernel`, `expansion` and `stride` are those of its first block; `blocks` lists
every block and may vary kernel and expansion inside a stage (S3NAS does). A stage given
without `blocks` gets `depth` copies of its first block, stride 1 after the first.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from latency_lab.network.complexity import params
from latency_lab.network.fields import SpecError, _num, float_field, int_field
from latency_lab.network.memo import IdentityMemo
from latency_lab.fileio import parse_json

ACTIVATIONS = ("swish", "relu", "relu6", "hswish")
BLOCK_KINDS = ("mbconv",)
MIN_RESOLUTION, MAX_RESOLUTION = 32, 2048
# Bounds of what can be built and measured at all; each error says why.
MAX_PARAMS = 2**31 // 4   # float32 weights of a TFLite flatbuffer, which cannot exceed 2 GiB
MAX_BLOCKS = 200          # build time grows with depth (see _BLOCKS_WHY)
# B2 has 23 blocks: converted in 7.4 s at load < 1 and 43 s at load 11, emitted directly in 56
# and 358 ms (results/benchmarks/direct_tflite_build__quiet.md, direct_tflite_benchmark.md).
_BLOCKS_WHY = ("converting a model takes 0.3-1.9 s per block on a 2-core machine, emitting it "
               "2-16 ms, and the deepest EfficientNet, B7, has 55")
MAX_KERNEL = 31           # the largest depthwise kernel in the literature (RepLKNet's 31x31)
MAX_EXPANSION = 32        # published MBConv networks use 1..6
MAX_NAME = 200


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: kernel of the depthwise conv, expansion ratio, stride."""

    kernel: int
    expansion: float
    stride: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "expansion": _num(self.expansion), "stride": self.stride}


@dataclass(frozen=True)
class StageSpec:
    """A body stage: `width` output channels, blocks of one kind, one SE ratio and activation."""

    width: int
    blocks: tuple[BlockSpec, ...]
    se_ratio: float = 0.0
    kind: str = "mbconv"

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def kernel(self) -> int:
        return self.blocks[0].kernel

    @property
    def expansion(self) -> float:
        return self.blocks[0].expansion

    @property
    def stride(self) -> int:
        return self.blocks[0].stride

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "width": self.width,
            "depth": self.depth,
            "kernel": self.kernel,
            "expansion": _num(self.expansion),
            "stride": self.stride,
            "se_ratio": _num(self.se_ratio),
            "blocks": [b.to_dict() for b in self.blocks],
        }


@dataclass(frozen=True)
class StemSpec:
    width: int
    kernel: int = 3
    stride: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "kernel": self.kernel, "stride": self.stride}


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: stem conv, body stages, 1x1 head conv, global pool, classifier."""

    name: str
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head_width: int
    num_classes: int = 1000
    activation: str = "swish"
    resolution: int = 224
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "activation": self.activation,
            "stem": self.stem.to_dict(),
            "head": {"width": self.head_width},
            "stages": [s.to_dict() for s in self.stages],
        }
        if self.source:
            d["source"] = self.source
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkSpec":
        try:
            return _from_dict(d)
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"not a network spec: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> "NetworkSpec":
        return cls.from_dict(parse_json(text, "network JSON", SpecError))

    # -- identity ---------------------------------------------------------------------------
    def arch_dict(self) -> dict[str, Any]:
        """The JSON form without what does not change the computation graph's weights."""
        d = self.to_dict()
        for key in ("name", "resolution", "source"):
            d.pop(key, None)
        return d

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the canonical architecture JSON (name, resolution out).
        Cached (the spec is frozen): a search against a 350-row table asked it 300,000 times,
        100 of its 145 s."""
        canon = json.dumps(self.arch_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    # -- convenience ------------------------------------------------------------------------
    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(s.width for s in self.stages)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    def with_resolution(self, resolution: int) -> "NetworkSpec":
        return replace(self, resolution=int(resolution))

    def with_stage(self, index: int, stage: StageSpec) -> "NetworkSpec":
        stages = list(self.stages)
        stages[index] = stage
        return replace(self, stages=tuple(stages))


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a JSON list, got {type(value).__name__}")
    return value


def _block(b: Any, where: str) -> BlockSpec:
    b = _obj(b, where)
    if "kernel" not in b or "expansion" not in b:
        raise SpecError(f"{where} needs 'kernel' and 'expansion'")
    return BlockSpec(int_field(b["kernel"], f"{where} kernel"),
                     float_field(b["expansion"], f"{where} expansion"),
                     int_field(b.get("stride", 1), f"{where} stride"))


def _stage(s: Any, i: int, conflicts: list[str]) -> StageSpec:
    """A stage from JSON; stage-level fields its blocks contradict go to `conflicts` (raised
    once the network is otherwise valid, so a kernel of 33 is refused for being 33)."""
    where = f"stage {i}"
    s = _obj(s, where)
    if "width" not in s:
        raise SpecError(f"{where} lacks 'width'")
    if "blocks" in s:
        blocks = tuple(_block(b, f"{where} block {j}")
                       for j, b in enumerate(_list(s["blocks"], f"{where} blocks")))
        if "depth" in s and int_field(s["depth"], f"{where} depth") != len(blocks):
            raise SpecError(f"{where}: depth {s['depth']} but {len(blocks)} blocks listed")
        for key in ("kernel", "expansion", "stride"):   # to_dict writes them: they must agree
            if key in s and blocks and s[key] != getattr(blocks[0], key):
                conflicts.append(f"{where}: {key} {s[key]!r} but its first block has "
                                 f"{getattr(blocks[0], key)!r} (a stage's {key} is its first "
                                 "block's: give it once, in blocks)")
    else:
        depth = int_field(s.get("depth"), f"{where} depth")
        if not 1 <= depth <= MAX_BLOCKS:   # checked before `depth` blocks are made
            raise SpecError(f"{where}: depth must be 1..{MAX_BLOCKS}, got {depth} ({_BLOCKS_WHY})")
        first = _block(s, where)
        blocks = (first,) + tuple(replace(first, stride=1) for _ in range(depth - 1))
    kind = s.get("kind", "mbconv")
    if not isinstance(kind, str):
        raise SpecError(f"{where} kind must be a string, got {kind!r}")
    stage = StageSpec(width=int_field(s["width"], f"{where} width"), blocks=blocks,
                      se_ratio=float_field(s.get("se_ratio", 0.0), f"{where} se_ratio"), kind=kind)
    # one object per distinct stage read: the networks of a table or a search's state share
    # most stages, and what is known of a stage is kept per object (memo.py)
    return _parsed_stages.setdefault(stage, stage)


_parsed_stages: "weakref.WeakValueDictionary[StageSpec, StageSpec]" = weakref.WeakValueDictionary()


def _from_dict(d: dict[str, Any]) -> NetworkSpec:
    if not isinstance(d, dict):
        raise SpecError("a network spec is a JSON object")
    missing = [k for k in ("stem", "head", "stages") if k not in d]
    if missing:
        raise SpecError(f"network spec lacks key(s): {', '.join(missing)}")
    stem = _obj(d["stem"], "stem")
    if "width" not in stem:
        raise SpecError("stem lacks 'width'")
    stem = StemSpec(width=int_field(stem["width"], "stem width"),
                    kernel=int_field(stem.get("kernel", 3), "stem kernel"),
                    stride=int_field(stem.get("stride", 2), "stem stride"))
    head = d["head"]
    if isinstance(head, dict) and "width" not in head:
        raise SpecError("head lacks 'width'")
    head_width = int_field(head["width"] if isinstance(head, dict) else head, "head width")
    conflicts: list[str] = []
    stages = tuple(_stage(s, i, conflicts) for i, s in enumerate(_list(d["stages"], "stages")))
    for key in ("name", "activation", "source"):
        if key in d and not isinstance(d[key], str):
            raise SpecError(f"{key} must be a string, got {d[key]!r}")
    spec = NetworkSpec(
        name=d.get("name", "custom"),
        stem=stem,
        stages=stages,
        head_width=head_width,
        num_classes=int_field(d.get("num_classes", 1000), "num_classes"),
        activation=d.get("activation", "swish"),
        resolution=int_field(d.get("resolution", 224), "resolution"),
        source=d.get("source", ""),
    )
    if conflicts:    # accepted and silently ignored before (issue 25)
        raise SpecError(conflicts[0])
    return spec


# Stages already validated (by identity: a spec's stages are frozen and shared by the specs a
# search derives from it; see memo.py)
_checked = IdentityMemo()


def _validate_stage(i: int, s: StageSpec) -> None:
    if s.kind not in BLOCK_KINDS:
        raise SpecError(f"stage {i}: unknown block kind {s.kind!r}")
    if s.width < 1 or not s.blocks:
        raise SpecError(f"stage {i}: width and depth must be positive")
    if not 0.0 <= s.se_ratio <= 1.0:
        raise SpecError(f"stage {i}: se_ratio must be in [0, 1]")
    for j, b in enumerate(s.blocks):
        if b.kernel < 1 or b.kernel % 2 == 0 or b.kernel > MAX_KERNEL:
            raise SpecError(f"stage {i} block {j}: kernel must be odd, 1..{MAX_KERNEL} (the "
                            f"largest depthwise kernel published), got {b.kernel}")
        if not 1 <= b.expansion <= MAX_EXPANSION:
            raise SpecError(f"stage {i} block {j}: expansion must be 1..{MAX_EXPANSION} "
                            f"(published MBConv networks use 1..6), got {b.expansion:g}")
        if b.stride not in (1, 2):
            raise SpecError(f"stage {i} block {j}: stride must be 1 or 2")
        if j > 0 and b.stride != 1:
            raise SpecError(f"stage {i} block {j}: only a stage's first block may have stride 2")


def check_resolution(resolution: int) -> int:
    r = int(resolution)
    if not MIN_RESOLUTION <= r <= MAX_RESOLUTION:
        raise SpecError(f"resolution {r} outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    return r


def _validate(n: NetworkSpec) -> None:
    if not isinstance(n.name, str) or len(n.name) > MAX_NAME or not n.name.isprintable():
        raise SpecError(f"network name must be printable text of at most {MAX_NAME} "
                        f"characters, got {n.name!r:.80}")
    if n.activation not in ACTIVATIONS:
        raise SpecError(f"unknown activation {n.activation!r}; known: {', '.join(ACTIVATIONS)}")
    check_resolution(n.resolution)
    if not n.stages:
        raise SpecError("a network needs at least one stage")
    for what, v in (("stem width", n.stem.width), ("head width", n.head_width),
                    ("num_classes", n.num_classes), ("stem kernel", n.stem.kernel),
                    ("stem stride", n.stem.stride)):
        if v < 1:
            raise SpecError(f"{what} must be positive, got {v}")
    blocks = 0
    for i, s in enumerate(n.stages):
        if not _checked.get(s, None, False):
            _validate_stage(i, s)
            _checked.put(s, None, True)
        blocks += len(s.blocks)
    if blocks > MAX_BLOCKS:
        raise SpecError(f"{blocks} blocks: at most {MAX_BLOCKS} can be measured ({_BLOCKS_WHY})")
    n_params = params(n)
    if n_params > MAX_PARAMS:
        raise SpecError(f"{n_params:,d} parameters: float32 weights over {MAX_PARAMS:,d} "
                        f"({4 * n_params / 2**30:.3g} GiB) do not fit the 2 GiB a TFLite model "
                        "can hold")
