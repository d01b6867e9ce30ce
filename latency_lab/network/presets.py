"""Named network presets, each with the source its numbers come from.

`get(name)` returns a `NetworkSpec`; `names()` lists them. A path to a JSON file is accepted
wherever a preset name is (see `load_network`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from latency_lab.fileio import parse_json, read_text
from latency_lab.network.scaling import scale_uniform, set_depth
from latency_lab.network.spec import BlockSpec, NetworkSpec, SpecError, StageSpec, StemSpec

# EfficientNet-B0 block arguments, from keras.applications.efficientnet DEFAULT_BLOCKS_ARGS
# (= the official TPU repo's efficientnet_builder.py): kernel, repeats, expand, stride, out.
_B0_STAGES = (
    (3, 1, 1, 1, 16),
    (3, 2, 6, 2, 24),
    (5, 2, 6, 2, 40),
    (3, 3, 6, 2, 80),
    (5, 3, 6, 1, 112),
    (5, 4, 6, 2, 192),
    (3, 1, 6, 1, 320),
)

# (width, depth, resolution) multipliers of EfficientNet-B1 and -B2 (Tan & Le 2019, Table 1;
# keras.applications.efficientnet EfficientNetB1/B2).
EFFICIENTNET_COEFFICIENTS = {"b1": (1.0, 1.1, 240), "b2": (1.1, 1.2, 260)}

# RBIS result for the B1 budget at 256 px: rbis-method.md Table 5.1 (stages 0..6, head).
_RBIS_B1_WIDTHS = (16, 24, 40, 104, 112, 192, 384)
_RBIS_B1_DEPTHS = (1, 2, 2, 5, 3, 7, 1)
_RBIS_B1_HEAD = 1408

# S3NAS-B0 (Lee et al., IEEE TCAD 2021), the MBConv-only search result published as
# models/mbconv_super_4_4_4_4_4_search_parsed_model.json in the public S3NAS code:
# per stage, the blocks as (kernel, expansion, stride); the width is the stage's output.
_S3NAS_STAGES = (
    (32, ((3, 4, 2),) + ((3, 2, 1),) * 3),
    (64, ((5, 2, 2),) + ((5, 2, 1),) * 3),
    (128, ((5, 2, 2),) + ((3, 2, 1),) * 2),
    (160, ((5, 4, 1),) + ((3, 2, 1),) * 2),
    (256, ((5, 4, 2),) + ((5, 4, 1),) * 3),
)


# mbconv-tiny: five MBConv stages with SE and swish, 10 classes at 64 px. Every stage is at
# least 20 wide, so that one RBIS width step (+10%, rounded to 4) changes every stage, and the
# stem is narrower than stage 0, so that widening stage 0 never adds a residual link.
# Kernel, repeats, expansion, stride, width per stage.
_TINY_STAGES = (
    (3, 1, 1, 1, 24),
    (3, 2, 4, 2, 32),
    (5, 2, 4, 2, 48),
    (3, 2, 4, 2, 64),
    (5, 1, 4, 1, 96),
)


def _stage(width: int, blocks, se_ratio: float) -> StageSpec:
    return StageSpec(width=width, blocks=tuple(BlockSpec(k, e, s) for k, e, s in blocks),
                     se_ratio=se_ratio)


def efficientnet_b0() -> NetworkSpec:
    stages = tuple(
        _stage(out, ((k, e, s),) + ((k, e, 1),) * (r - 1), 0.25)
        for k, r, e, s, out in _B0_STAGES
    )
    return NetworkSpec(name="efficientnet-b0", stem=StemSpec(32, 3, 2), stages=stages,
                       head_width=1280, activation="swish", resolution=224,
                       source="keras.applications.efficientnet DEFAULT_BLOCKS_ARGS")


def _efficientnet(variant: str) -> Callable[[], NetworkSpec]:
    def make() -> NetworkSpec:
        w, d, r = EFFICIENTNET_COEFFICIENTS[variant]
        spec = scale_uniform(efficientnet_b0(), w, d, r, name=f"efficientnet-{variant}")
        return replace(spec, source=f"efficientnet-b0 compound-scaled w={w} d={d} r={r}")
    return make


def efficientnet_b0_rbis_b1() -> NetworkSpec:
    b0 = efficientnet_b0()
    stages = tuple(set_depth(replace(s, width=w), d)
                   for s, w, d in zip(b0.stages, _RBIS_B1_WIDTHS, _RBIS_B1_DEPTHS))
    return NetworkSpec(name="efficientnet-b0-rbis-b1", stem=b0.stem, stages=stages,
                       head_width=_RBIS_B1_HEAD, activation="swish", resolution=256,
                       source="RBIS thesis Table 5.1 (B0 scaled to the B1 budget on Pixel2)")


def mbconv_tiny() -> NetworkSpec:
    stages = tuple(
        _stage(out, ((k, e, s),) + ((k, e, 1),) * (r - 1), 0.25)
        for k, r, e, s, out in _TINY_STAGES
    )
    return NetworkSpec(name="mbconv-tiny", stem=StemSpec(16, 3, 2), stages=stages,
                       head_width=256, num_classes=10, activation="swish", resolution=64,
                       source="latency-lab: a small MBConv network for training on a CPU")


def s3nas_b0() -> NetworkSpec:
    return NetworkSpec(name="s3nas-b0", stem=StemSpec(32, 7, 2),
                       stages=tuple(_stage(w, b, 0.0) for w, b in _S3NAS_STAGES),
                       head_width=1280, activation="relu", resolution=224,
                       source="S3NAS mbconv_super_4_4_4_4_4_search_parsed_model.json")


PRESETS: dict[str, Callable[[], NetworkSpec]] = {
    "efficientnet-b0": efficientnet_b0,
    "efficientnet-b1": _efficientnet("b1"),
    "efficientnet-b2": _efficientnet("b2"),
    "efficientnet-b0-rbis-b1": efficientnet_b0_rbis_b1,
    "s3nas-b0": s3nas_b0,
    "mbconv-tiny": mbconv_tiny,
}


def names() -> list[str]:
    return list(PRESETS)


def get(name: str) -> NetworkSpec:
    try:
        return PRESETS[name]()
    except KeyError:
        raise SpecError(f"unknown network {name!r}; presets: {', '.join(PRESETS)}") from None


def load_network(name_or_path: str) -> NetworkSpec:
    """A preset by name, or a file by path: a network JSON, or a result file that holds one
    (search's result.json, or its directory; scale's --out JSON; compare's compare.json).
    `FILE#KEY` picks one of several networks in a file: a method of compare.json
    (`compare.json#compound`), or a resolution of a search result (`result.json#256`, that
    resolution's best network)."""
    if name_or_path in PRESETS:
        return get(name_or_path)
    text, _, key = name_or_path.partition("#") if not Path(name_or_path).exists() \
        else (name_or_path, "", "")
    path = Path(text)
    if path.is_dir():          # a search's output directory: its result.json
        path = path / "result.json"
        if not path.is_file():
            raise SpecError(f"{text} is not a search result directory (no result.json)")
    if path.suffix == ".json" or path.exists():
        doc = parse_json(read_text(path, "network file", SpecError), str(path), SpecError)
        return network_from_document(doc, str(path), key)
    return get(name_or_path)


def network_from_document(doc, where: str, key: str = "") -> NetworkSpec:
    """The network a JSON document describes: a spec itself, or the `network` of a result
    file (search, scale), or one of the `methods` of compare.json (`key` names it)."""
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: not a network spec or result file (a JSON object)")
    if "network" not in doc and "methods" not in doc:   # a spec (it is checked field by field)
        if key:
            raise SpecError(f"{where} holds one network; drop '#{key}'")
        return NetworkSpec.from_dict(doc)
    if isinstance(doc.get("methods"), dict):          # compare.json
        methods = doc["methods"]
        if key not in methods:
            named = ", ".join(methods)
            raise SpecError(f"{where} holds {len(methods)} networks ({named}): name one, e.g. "
                            f"{where}#{next(iter(methods), 'rbis')}"
                            + (f" ('{key}' is not one of them)" if key else ""))
        return network_from_document(methods[key], f"{where}#{key}")
    if key and isinstance(doc.get("per_resolution"), list):   # search result, one resolution
        rows = [r for r in doc["per_resolution"] if isinstance(r, dict)]   # not lists: refused
        hit = [r for r in rows if str(r.get("resolution")) == key]
        if not hit or not isinstance(hit[0].get("network"), dict):
            done = [str(r.get("resolution")) for r in rows if isinstance(r.get("network"), dict)]
            raise SpecError(f"{where} has no network at resolution {key} (it has "
                            f"{', '.join(done) or 'none'})")
        return NetworkSpec.from_dict(hit[0]["network"])
    if key:
        raise SpecError(f"{where} holds one network; drop '#{key}'")
    if isinstance(doc.get("network"), dict):           # search result.json, scale --out
        return NetworkSpec.from_dict(doc["network"])
    if "network" in doc and doc["network"] is None:
        raise SpecError(f"{where}: the search found no network within its budget")
    raise SpecError(f"{where}: neither a network spec (stem, stages, head) nor a result file "
                    "of search, scale or compare (no 'network' key)")
