"""A device that slows down during a run, as a phone heats up or a shared machine's load
doubles: importable as `--device drift_device:SlowingDevice` (tests/ is on the import path),
or registered under the `latency_lab.devices` entry-point group by a test's plugin.

It speaks the real driver API (`Device.info`, `sample` returning `RunResult`s of per-run
milliseconds) and answers networks and LUT blocks alike; only the hardware is simulated, and
no time is spent: each run's latency is an analytic cost (MACs of every layer at its output
size, a fixed cost per block and per network), multiplied by `factor` once the device has
given `slow_after` samples (0: never), with a seeded +-`noise_pct` % jitter per run.
"""

from __future__ import annotations

import random

from latency_lab.measure.api import Device, DeviceInfo, RunResult
from latency_lab.network.blocks import BlockModel, network_blocks

MS_PER_GMAC = 5.0      # analytic: EfficientNet-B0 at 224 (0.386 GMAC) about 2.9 ms
MS_PER_BLOCK = 0.02
MS_PER_NETWORK = 0.3


def block_ms(block: BlockModel, size: int) -> float:
    macs = 0.0
    for layer, s in block.layer_inputs(size):
        out = layer.output_size(s)
        macs += layer.macs_per_pixel() * (out * out if layer.spatial else 1)
    return MS_PER_BLOCK + MS_PER_GMAC * macs / 1e9


def steady_ms(point, size: int) -> float:
    """What a run of a network (or a LUT block) costs on the steady device."""
    if isinstance(point, BlockModel):
        return block_ms(point, size)
    return MS_PER_NETWORK + sum(block_ms(s.block, s.size) for s in network_blocks(point, size))


class SlowingDevice(Device):
    name = "slowing"

    def __init__(self, slow_after: int = 0, factor: float = 1.8, noise_pct: float = 0.3,
                 seed: int = 0):
        self.slow_after, self.factor, self.noise = int(slow_after), float(factor), noise_pct
        self.rng = random.Random(seed)
        self.taken = 0          # samples given so far (warm-up runs included)

    def info(self) -> DeviceInfo:
        # the same context whether or not it slows: what changes is the machine, not the setup
        return DeviceInfo("slowing", "simulated (analytic MACs cost)", "python", "1",
                          extra={"noise_pct": self.noise})

    def speed(self) -> float:
        return self.factor if self.slow_after and self.taken >= self.slow_after else 1.0

    def sample(self, spec, resolution, runs, warmup_runs=1) -> RunResult:
        base = steady_ms(spec, int(resolution))
        self.taken += warmup_runs
        out = []
        for _ in range(runs):
            jitter = 1 + self.noise / 100 * (2 * self.rng.random() - 1)
            out.append(base * self.speed() * jitter)
            self.taken += 1
        return RunResult(tuple(out), facts={"speed": self.speed()})
