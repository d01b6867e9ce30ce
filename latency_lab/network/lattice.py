"""Where a network's feature maps grow as its input grows: the places latency may step.

A convolution with 'same' padding maps a side of n pixels to ceil(n / stride), so a block whose
input has passed through total stride S has a map of ceil(r / S) at input resolution r. Between
two resolutions a < b of a sweep, that map grows exactly when ceil(a / S) < ceil(b / S): once
every S pixels, just after each multiple of S. On this host's CPU (LiteRT, XNNPACK) the
EfficientNet-B0 sweeps step right there: +6-15% just after every multiple of 32 (the stride-32
map of stages 5-6 and the head grows by one row and column of tiles), +2-5% after the odd
multiples of 16 (the stride-16 map of stages 3-5), 52 of 53 jumps in the four committed sweeps
(docs/jumps.md). Maps of small stride grow at nearly every grid step and make the smooth part
of the curve; the coarse ones make its steps.

`lattice_places(spec, resolutions)` reads the strides from the one block walk
(`blocks.network_blocks`) and lists, for each pair of neighbouring grid points, the coarse maps
that grow between them (`Place`), with the stages and blocks they belong to. Pure functions:
nothing here measures or fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from latency_lab.network.blocks import NetworkLike, network_blocks

# Maps of at least this total stride make places; a finer map grows every few pixels and is
# part of the trend. 16: the strides at which the committed CPU sweeps step (docs/jumps.md).
DEFAULT_MIN_STRIDE = 16


@dataclass(frozen=True)
class Place:
    """The break between grid points k and k+1 (resolutions `before` < `after`), where the
    output maps of total stride `stride` (the coarsest that grows there) go from `size_before`
    to `size_after` per side. `sites` names the blocks whose output map that is (`s5.b1`,
    `head`), `stages` their body stages; `strides` lists every coarse stride that grows."""

    k: int
    before: int
    after: int
    stride: int
    size_before: int
    size_after: int
    stages: tuple[int, ...]
    sites: tuple[str, ...]
    strides: tuple[int, ...]

    @property
    def label(self) -> str:
        """'1/32 map 7->8: stages 5-6 + head' (the coarsest map that grows, whose blocks)."""
        names = _stage_range(self.stages)
        if "head" in self.sites:
            names = f"{names} + head" if names else "head"
        if "stem" in self.sites:
            names = f"stem + {names}" if names else "stem"
        return f"1/{self.stride} map {self.size_before}->{self.size_after}: {names}"


def _stage_range(stages: Sequence[int]) -> str:
    if not stages:
        return ""
    lo, hi = min(stages), max(stages)
    return f"stage {lo}" if lo == hi else f"stages {lo}-{hi}"


def output_strides(spec: NetworkLike) -> list[tuple[str, int | None, int]]:
    """(where, stage, total stride of its output map) of every site of the walk, stem first:
    'same' padding composes, ceil(ceil(r / a) / b) = ceil(r / (a * b)), so a site's output
    map at input r is ceil(r / stride)."""
    out, total = [], 1
    for site in network_blocks(spec):
        total *= site.block.stride
        out.append((site.where, site.stage, total))
    return out


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def lattice_places(spec: NetworkLike, resolutions: Sequence[int],
                   min_stride: int = DEFAULT_MIN_STRIDE) -> list[Place]:
    """Every break of the sorted grid `resolutions` where a map of total stride >= min_stride
    grows (or, when the network has no map that coarse, one of its coarsest stride).

    A grid of step 4 over 160..400 gives, for EfficientNet-B0, a place after every multiple of
    16 (176, 192, ..., 384; 160 and 400 at the ends): 1/32 maps after the multiples of 32,
    1/16 maps after the others."""
    strides = output_strides(spec)
    coarsest = max(s for _, _, s in strides)
    floor = min(int(min_stride), coarsest)
    coarse = sorted({s for _, _, s in strides if s >= floor}, reverse=True)
    grid = sorted(int(r) for r in resolutions)
    out = []
    for k, (a, b) in enumerate(zip(grid[:-1], grid[1:])):
        grown = [s for s in coarse if _ceil_div(a, s) < _ceil_div(b, s)]
        if not grown:
            continue
        top = grown[0]
        sites = [(w, st) for w, st, s in strides if s == top]
        out.append(Place(k, a, b, top, _ceil_div(a, top), _ceil_div(b, top),
                         tuple(sorted({st for _, st in sites if st is not None})),
                         tuple(w for w, _ in sites), tuple(grown)))
    return out
