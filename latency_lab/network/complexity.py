"""Analytic parameter and multiply-accumulate (MAC) counts of a `NetworkSpec`.

Counted on the one walk (`blocks.network_blocks`), each layer reporting its own counts
(`blocks.Layer.params`, `.macs`), so they follow the builders layer for layer: convolutions
without bias followed by batch norm (2 trainable parameters per channel: gamma, beta),
squeeze-and-excitation convs with bias, a dense classifier with bias. "Parameters" are
trainable ones, as Keras counts them. MACs count convolutions and the classifier (batch norm,
activations and pooling are left out, as in the EfficientNet paper's FLOPs). 'same' padding:
output size = ceil(input / stride).
"""

from __future__ import annotations

from dataclasses import dataclass

from latency_lab.network.blocks import NetworkLike, network_blocks, network_params


@dataclass(frozen=True)
class LayerCount:
    name: str
    params: int
    macs: int


def layer_counts(spec: NetworkLike, resolution: int | None = None) -> list[LayerCount]:
    """Per-block counts: stem, every block (`s{stage}.b{block}`), head, and the classifier
    apart from the head conv (as the EfficientNet paper's tables list it)."""
    out: list[LayerCount] = []
    for site in network_blocks(spec, resolution):
        parts: dict[str, list[int]] = {}
        for layer, size in site.block.layer_inputs(site.size):
            name = "classifier" if layer.role == "classifier" else site.where
            p = parts.setdefault(name, [0, 0])
            p[0] += layer.params
            p[1] += int(layer.macs(size))
        out.extend(LayerCount(name, p, m) for name, (p, m) in parts.items())
    return out


def params(spec: NetworkLike) -> int:
    return network_params(spec)


def macs(spec: NetworkLike, resolution: int | None = None) -> int:
    return sum(layer.macs for layer in layer_counts(spec, resolution))
