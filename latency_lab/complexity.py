"""Analytic parameter and multiply-accumulate (MAC) counts of a `NetworkSpec`.

Counts follow the Keras/torch builders layer for layer: convolutions without bias followed by
batch norm (2 trainable parameters per channel: gamma, beta), squeeze-and-excitation convs with
bias, a dense classifier with bias. "Parameters" are trainable ones, as Keras counts them.
MACs count convolutions and the classifier (batch norm, activations and pooling are left out,
as in the EfficientNet paper's FLOPs). 'same' padding: output size = ceil(input / stride).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from latency_lab.spec import NetworkSpec


@dataclass(frozen=True)
class LayerCount:
    name: str
    params: int
    macs: int


def se_channels(block_in: int, se_ratio: float) -> int:
    """Squeezed channels of an SE module (Keras: max(1, int(filters_in * se_ratio)))."""
    return max(1, int(block_in * se_ratio))


def expanded_channels(block_in: int, expansion: float) -> int:
    return int(round(block_in * expansion))


def mbconv_count(c_in: int, c_out: int, kernel: int, expansion: float, stride: int,
                 se_ratio: float, size_in: int) -> tuple[int, int, int]:
    """(params, MACs, output spatial size) of one MBConv block at input size `size_in`."""
    size_out = math.ceil(size_in / stride)
    c_mid = expanded_channels(c_in, expansion)
    params = macs = 0
    if c_mid != c_in:
        params += c_in * c_mid + 2 * c_mid
        macs += c_in * c_mid * size_in * size_in
    params += kernel * kernel * c_mid + 2 * c_mid
    macs += kernel * kernel * c_mid * size_out * size_out
    if se_ratio > 0:
        c_se = se_channels(c_in, se_ratio)
        params += c_mid * c_se + c_se + c_se * c_mid + c_mid
        macs += 2 * c_mid * c_se
    params += c_mid * c_out + 2 * c_out
    macs += c_mid * c_out * size_out * size_out
    return params, macs, size_out


def layer_counts(spec: NetworkSpec, resolution: int | None = None) -> list[LayerCount]:
    """Per-layer counts: stem, every block (`s{stage}.b{block}`), head, classifier."""
    size = resolution or spec.resolution
    out: list[LayerCount] = []
    c = spec.stem.width
    size_stem = math.ceil(size / spec.stem.stride)
    out.append(LayerCount("stem", spec.stem.kernel ** 2 * 3 * c + 2 * c,
                          spec.stem.kernel ** 2 * 3 * c * size_stem * size_stem))
    size = size_stem
    for i, stage in enumerate(spec.stages):
        for j, b in enumerate(stage.blocks):
            p, m, size = mbconv_count(c, stage.width, b.kernel, b.expansion, b.stride,
                                      stage.se_ratio, size)
            out.append(LayerCount(f"s{i}.b{j}", p, m))
            c = stage.width
    h = spec.head_width
    out.append(LayerCount("head", c * h + 2 * h, c * h * size * size))
    out.append(LayerCount("classifier", h * spec.num_classes + spec.num_classes,
                          h * spec.num_classes))
    return out


def params(spec: NetworkSpec) -> int:
    return sum(layer.params for layer in layer_counts(spec))


def macs(spec: NetworkSpec, resolution: int | None = None) -> int:
    return sum(layer.macs for layer in layer_counts(spec, resolution))
