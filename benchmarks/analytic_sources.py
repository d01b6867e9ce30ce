"""SYNTHETIC latency and accuracy functions for exercising the search without a device.

Neither number is a measurement or a trained accuracy. They exist so that the search driver,
the baselines and their plots can be run end to end and timed where no recorded latency table
or accuracy table exists yet, as `py:benchmarks.analytic_sources:latency_ms` and
`py:benchmarks.analytic_sources:accuracy` (run from the repository root).

- `latency_ms`: MACs-based. Each layer's MACs are counted at its spatial size padded up to a
  multiple of `TILE` (4, half of the padding paid, like the tiled kernels of mobile runtimes), so latency over
  resolution is piecewise with steps, as the method's Step 1 observes on devices; plus a
  fixed cost per block and per network. Constants put EfficientNet-B0 at 224 near the
  thesis's Pixel2 figure (165 ms) and are otherwise arbitrary.
- `accuracy`: a saturating function of log width, log depth (per stage) and log resolution,
  with stage weights loosely ordered like the thesis's full-training ranking of single steps
  (width of the middle stages helps most). EfficientNet-B0 at 224 scores 76.7.
"""

from __future__ import annotations

import math

from latency_lab.blocks import network_blocks
from latency_lab.presets import efficientnet_b0
from latency_lab.spec import NetworkSpec

TILE = 4                 # spatial padding granularity (synthetic)
PAD_COST = 0.5           # share of the padded area that costs time (synthetic)
MS_PER_MMAC = 0.36       # synthetic: B0 at 224 ~ 165 ms
MS_PER_BLOCK = 0.6
MS_FIXED = 6.0


def _pad(size: int) -> float:
    """Spatial size as paid for: part of the way up to the next multiple of TILE."""
    return size + PAD_COST * (TILE * math.ceil(size / TILE) - size)


def macs_padded(spec: NetworkSpec, resolution: int) -> tuple[float, int]:
    """(MACs with every conv's output size padded to TILE, number of MBConv blocks)."""
    total, blocks = 0.0, 0
    for site in network_blocks(spec, resolution):
        for layer, size in site.block.layer_inputs(site.size):
            out = layer.output_size(size)
            total += layer.macs_per_pixel() * (_pad(out) ** 2 if layer.spatial else 1)
        blocks += site.block.kind == "mbconv"
    return total, blocks


def latency_ms(network: dict) -> float:
    spec = NetworkSpec.from_dict(network)
    macs, blocks = macs_padded(spec, int(network["resolution"]))
    return MS_FIXED + MS_PER_BLOCK * blocks + MS_PER_MMAC * macs / 1e6


# Per body stage of EfficientNet-B0 (0..6): accuracy gain per unit log width / log depth.
WIDTH_GAIN = (0.05, 0.10, 0.25, 1.10, 0.95, 0.85, 0.45)
DEPTH_GAIN = (0.05, 0.10, 0.12, 0.30, 0.18, 0.42, 0.10)
RESOLUTION_GAIN = 0.9
ACC_MAX, ACC_B0 = 80.9, 76.7


def accuracy(network: dict) -> float:
    spec = NetworkSpec.from_dict(network)
    base = efficientnet_b0()
    growth = RESOLUTION_GAIN * math.log(int(network["resolution"]) / base.resolution)
    for i, (s, b) in enumerate(zip(spec.stages, base.stages)):
        growth += WIDTH_GAIN[i] * math.log(s.width / b.width)
        growth += DEPTH_GAIN[i] * math.log(s.depth / b.depth)
    return ACC_MAX - (ACC_MAX - ACC_B0) * math.exp(-growth)
