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
- `accuracy`: `latency_lab.search.synthetic.accuracy` (`--accuracy synthetic`), a saturating
  function of log width, log depth and log resolution. Both functions carry a `synthetic`
  mark, so every output of a search that used them says "synthetic".
"""

from __future__ import annotations

import math

from latency_lab.network.blocks import network_blocks
from latency_lab.network.spec import NetworkSpec

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


# The accuracy is the package's synthetic one (marked synthetic wherever a search reports it).
from latency_lab.search.synthetic import accuracy  # noqa: E402,F401

latency_ms.synthetic = "MACs-based with 4-px tile padding; not a measurement"
