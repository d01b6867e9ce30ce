"""Recording a per-block LUT (lut.py) on a device, through the measuring protocol.

`record_lut` measures, on a device, every distinct block that RBIS-scaled versions of a network
can contain (`scaling.scaled_space_blocks`), each as a one-block model at its input size,
through the ordinary protocol (interleaved rounds, CI stopping rule, every sample committed to
the store as taken, so an interrupted recording resumes). It also measures a few whole networks
(the base network at every resolution plus some random scaled ones) to calibrate the predictor.

A recording resumed over several sessions (the README's wide LUT took four, at loads 6-12)
would otherwise mix the sessions' levels: what a session finished is reused as it was. So it
goes through a latency scale (`latency_lab.measure.scale`) with two references, measured again
in every session: a block (the base network's middle MBConv block at the first resolution)
for the blocks, and the base network at the first resolution for the whole networks (under
load, whole networks slowed 2.5x while single blocks kept near their quiet times, so one
factor cannot serve both). The scale is each reference's first finished measurement in the
store (the first session's); a session's new points are divided by its factor, and points
reused from an earlier session by that session's. The LUT file keeps the factors
(`latency_scale`).
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from latency_lab.measure.api import Device
from latency_lab.network.scaling import random_scaled, scaled_space_blocks
from latency_lab.network.spec import NetworkSpec
from latency_lab.tables.lut import (MAX_CALIBRATION_CI_PCT, STATISTICS, BlockRow,
                                    CalibrationPoint, Lut, LutError, fit_overhead)

Progress = Callable[[str, Any], None]   # (phase, protocol.RunStatus)

# What measuring a block point costs once its model exists: 248 points and 57 whole networks
# in 87 s on the 2-core host (results/benchmarks/lut_benchmark.md, final run), 0.35 s a point.
SECONDS_PER_POINT = 87 / 248
# The largest space recorded in one run: 50,000 points, about 5 h at that rate (B0 with 28
# width steps in every stage at 4 resolutions is 15,364; the README's 0,0,4,5,5,4,28, 904).
MAX_POINTS = 50_000


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{seconds:.0f} s"


def check_space(spec: NetworkSpec, resolutions: Sequence[int], max_width_steps,
                max_depth_steps) -> str:
    """Bound the LUT's space before any block is made: a one-line LutError with its size and
    time estimate when it has more than MAX_POINTS points, else that estimate (for the
    header line)."""
    from latency_lab.network.scaling import per_stage, scaled_variant, space_size
    from latency_lab.network.spec import MAX_BLOCKS

    n = space_size(spec, resolutions, max_width_steps, max_depth_steps)
    w = per_stage(max_width_steps, len(spec.stages), "--max-width-steps")
    d = per_stage(max_depth_steps, len(spec.stages), "--max-depth-steps")
    deepest = sum(spec.depths) + sum(d)
    if deepest > MAX_BLOCKS:      # the calibration networks are drawn up to these depths
        raise LutError(f"--max-depth-steps {max_depth_steps} scales {spec.name} up to "
                       f"{deepest} blocks; at most {MAX_BLOCKS} can be measured whole (1 "
                       f"depth step already covers every depth in the LUT)")
    if n <= MAX_POINTS:
        scaled_variant(spec, w, d)   # the largest network it covers must be one (SpecError)
    estimate = (f"up to {n:,d} block points, about {_duration(n * SECONDS_PER_POINT)} to "
                f"measure at {SECONDS_PER_POINT:.2f} s a point (more to build new block models)")
    if n > MAX_POINTS:
        raise LutError(f"the LUT space of {spec.name} at {len(set(resolutions))} "
                       f"resolution(s) has {estimate}; at most {MAX_POINTS:,d} (about "
                       f"{_duration(MAX_POINTS * SECONDS_PER_POINT)}) are recorded in one run: "
                       "lower --max-width-steps or give fewer resolutions")
    return estimate


def calibration_networks(spec: NetworkSpec, resolutions: Sequence[int], max_width_steps,
                         max_depth_steps, n_random: int, seed: int = 0
                         ) -> list[tuple[NetworkSpec, int]]:
    """The base network at every resolution, then `n_random` random scaled ones."""
    rng = random.Random(seed)
    points = [(spec, int(r)) for r in sorted(resolutions)]
    for _ in range(n_random):
        points.append((random_scaled(spec, max_width_steps, max_depth_steps, rng),
                       rng.choice(sorted(resolutions))))
    return points


def reference_block(spec: NetworkSpec, resolution: int) -> tuple[Any, int]:
    """The block that stands for every block of a LUT on its scale: the base network's middle
    MBConv block at `resolution` (a typical block: neither the cheapest nor the largest)."""
    from latency_lab.network.blocks import network_blocks

    sites = [s for s in network_blocks(spec, int(resolution)) if s.block.kind == "mbconv"]
    site = sites[len(sites) // 2]
    return site.block, site.size


def record_lut(device: Device, spec: NetworkSpec, resolutions: Sequence[int],
               max_width_steps, max_depth_steps, store, protocol,
               n_calibration: int = 2, seed: int = 0, progress: Progress | None = None,
               statistic: str = "median", say: Callable[[str], None] | None = None,
               remeasure: bool = False) -> Lut:
    """Measure every block of the scaled space and a few whole networks; return the LUT.

    Resumable: blocks and networks already measured in `store` on this device context are
    reused (the store keys block points by block fingerprint and input size), each put on the
    recording's scale by the reference measured with it (module docstring; `say` gets what
    each session reused, measured again and at what level).
    """
    from latency_lab.measure.scale import LatencyScale, ScaleError

    if statistic not in STATISTICS:
        raise LutError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")
    info = device.info()
    check_space(spec, resolutions, max_width_steps, max_depth_steps)
    points = scaled_space_blocks(spec, resolutions, max_width_steps, max_depth_steps)

    def phase(name: str):
        return (lambda status: progress(name, status)) if progress else None

    calib = calibration_networks(spec, resolutions, max_width_steps, max_depth_steps,
                                 n_calibration, seed)
    # One interleaved run for blocks and calibration networks: the machine's drift and load
    # hit both alike, so the fitted overhead is not the difference of two different moments.
    first = min(int(r) for r in resolutions)
    ref_block, ref_net = reference_block(spec, first), (spec.with_resolution(first), first)
    is_block = {b.fingerprint for b, _ in points}
    scale = LatencyScale(device, store, protocol, remeasure=remeasure, say=say,
                         progress=phase("blocks+calibration"), first_from_store=True,
                         reference_of=lambda p: ref_block if p[0].fingerprint in is_block
                         else ref_net)
    try:
        measured = scale.measure(list(points) + calib)
    except ScaleError as exc:
        raise LutError(f"{exc} (block and calibration points)") from None
    whole = measured[len(points):]
    rows: dict[tuple[str, int], BlockRow] = {}
    for (block, size), v in zip(points, measured):
        s, f = v.measurement.stats, v.factor
        rows[(block.fingerprint, size)] = BlockRow(block, size, v.latency_ms, v.ci_low_ms,
                                                   v.ci_high_ms, s.count, s.std_ms / f,
                                                   v.measurement.stop_reason, s.p5_ms / f)
    lut = Lut(info, spec, sorted(int(r) for r in resolutions), max_width_steps,
              max_depth_steps, rows, protocol=protocol.to_dict(),
              created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
              statistic=statistic, latency_scale=scale.to_dict())
    lut.calibration = [calibration_point(lut, net, r, v) for (net, r), v in zip(calib, whole)]
    lut.overhead = fit_overhead(lut.calibration,
                                MAX_CALIBRATION_CI_PCT if statistic == "median" else None)
    return lut


def calibration_point(lut: Lut, spec: NetworkSpec, resolution: int, v) -> CalibrationPoint:
    """A whole network as calibration point; `v`: its `scale.Scaled` latency."""
    s, f = v.measurement.stats, v.factor
    return CalibrationPoint(spec.name, spec.fingerprint, int(resolution),
                            v.latency_ms if lut.statistic == "median" else s.p5_ms / f,
                            v.ci_low_ms, v.ci_high_ms, s.count,
                            lut.block_sum(spec, resolution)[0])
