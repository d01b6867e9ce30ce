"""Devices that behave like a GPU where no GPU exists (CI): importable as `--device
fake_gpu:SlowSetupDevice` / `fake_gpu:FakeCudaDevice` (tests/ is on the import path).

They speak the real driver API (`Device.setup`, `sample`, `RunResult` facts) and, for the
launch check, use the cuda driver's own `launch_check` on simulated timings; only the GPU is
simulated.
"""

from __future__ import annotations

import time

from latency_lab.devices.cuda import launch_check
from latency_lab.measure.api import Device, DeviceInfo, RunResult


def gpu_ms(resolution: int) -> float:
    """A GPU's time for the forward: grows with the pixels, steps after multiples of 32."""
    return 0.2 + 1e-5 * resolution ** 2 + (0.05 if resolution % 32 > 16 else 0.0)


class SlowSetupDevice(Device):
    """A GPU-like device whose first visit of a shape costs `setup_s` seconds (autotuning,
    warm-up), and whose measured runs are fast; `sample` sets up on first use, as the cuda
    driver does."""

    name = "slow-setup"

    def __init__(self, setup_s: float = 0.25, fail_after: int | None = None):
        self.setup_s = setup_s
        self.fail_after = fail_after      # visits after which Ctrl-C "arrives"
        self.visits = 0
        self.ready: set[tuple[str, int]] = set()
        self.setups: list[int] = []

    def info(self) -> DeviceInfo:
        return DeviceInfo("slow-setup", "simulated GPU", "python", "1")

    def setup(self, spec, resolution):
        time.sleep(self.setup_s)
        self.ready.add((spec.fingerprint, resolution))
        self.setups.append(resolution)
        return {"autotuned": True}

    def sample(self, spec, resolution, runs, warmup_runs=1):
        if self.fail_after is not None and self.visits >= self.fail_after:
            raise KeyboardInterrupt
        self.visits += 1
        if (spec.fingerprint, resolution) not in self.ready:
            self.setup(spec, resolution)
        return RunResult(tuple(gpu_ms(resolution) * (1 + 0.001 * k) for k in range(runs)))


class FakeCudaDevice(Device):
    """A cuda-like device with the cuda driver's options: the host needs `launch_ms` to launch
    an eager forward, so an eager run takes max(GPU time, launch time) (the GPU waits for the
    host) and a graph replay the GPU time; with `cuda_graphs` it measures replays. Time is
    spent for real (sleeps), so scripts with time budgets can be run against it: a set-up
    costs `autotune_s` with `cudnn_benchmark`, and a batch whose input exceeds `memory_mpx`
    million pixels is out of memory, as on a GPU."""

    name = "fake-cuda"

    def __init__(self, cuda_graphs: bool = True, launch_ms: float = 1.0, precision: str = "fp32",
                 batch_size: int = 1, cudnn_benchmark: bool = False, shape_warmup: int = 10,
                 autotune_s: float = 0.0, memory_mpx: float = 50.0):
        from latency_lab.measure.api import DeviceError

        if precision not in ("fp32", "fp16"):
            raise DeviceError(f"precision must be one of fp32, fp16, not {precision!r}")
        self.cuda_graphs, self.launch_ms, self.precision = cuda_graphs, launch_ms, precision
        self.batch_size, self.cudnn_benchmark = batch_size, cudnn_benchmark
        self.autotune_s, self.memory_mpx = autotune_s, memory_mpx
        self.facts: dict[int, dict] = {}

    def info(self) -> DeviceInfo:
        return DeviceInfo("fake-cuda", "simulated GPU", "python", "1", precision=self.precision,
                          batch_size=self.batch_size,
                          extra={"cuda_graphs": self.cuda_graphs,
                                 "cudnn_benchmark": self.cudnn_benchmark})

    def gpu_ms(self, resolution: int) -> float:
        scale = 0.5 if self.precision == "fp16" else 1.0
        return scale * (gpu_ms(resolution) + 0.002 * (self.batch_size - 1) * (resolution / 64) ** 2)

    def setup(self, spec, resolution):
        from latency_lab.measure.api import DeviceError

        if self.batch_size * resolution ** 2 / 1e6 > self.memory_mpx:
            raise DeviceError(f"GPU out of memory at {resolution} px, batch {self.batch_size}")
        if self.cudnn_benchmark:
            time.sleep(self.autotune_s)
        eager = max(self.gpu_ms(resolution), self.launch_ms)
        graph = self.gpu_ms(resolution) if self.cuda_graphs else None
        facts = launch_check(eager, self.launch_ms, graph)
        facts["execution"] = "graph" if self.cuda_graphs else "eager"
        facts["launch_bound"] = not self.cuda_graphs and facts["eager_launch_bound"]
        self.facts[resolution] = facts
        return facts

    def sample(self, spec, resolution, runs, warmup_runs=1):
        if resolution not in self.facts:
            self.setup(spec, resolution)
        f = self.facts[resolution]
        ms = f["graph_ms"] if f["execution"] == "graph" else f["eager_ms"]
        time.sleep(min(ms * (runs + warmup_runs) / 1e3, 1.0))
        return RunResult(tuple(ms * (1 + 0.0005 * k) for k in range(runs)),
                         facts={"execution": f["execution"], "launch_bound": f["launch_bound"]})
