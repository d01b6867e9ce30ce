"""A desktop NVIDIA GPU through torch on CUDA (the thesis's RTX 3090 without TensorRT).

The network is `build_torch(spec)` in eval mode, fp32 or fp16 (`precision`), NCHW or
channels-last (`channels_last`, default on: cuDNN's fast NHWC kernels), batch `batch_size`.
`torch.backends.cudnn.benchmark` autotunes per input shape, so the first visit of every new
shape gets `shape_warmup` extra unrecorded runs. Each run is timed with a pair of CUDA events on
the current stream (GPU time of the forward, no host overhead after the launch); optionally the
forward is captured once per shape in a CUDA graph (`cuda_graphs`) and replayed.

Records the GPU name, compute capability, driver, CUDA and cuDNN versions in `info()`, and the
SM/memory clocks, temperature and power reported by `nvidia-smi` in every sample's facts.
Without CUDA (a CPU build of torch, or no GPU) it refuses with a DeviceError saying which.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from typing import Any

from latency_lab.measure import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.spec import NetworkSpec

PRECISIONS = ("fp32", "fp16")
SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm",
              "temperature.gpu", "power.draw", "pstate")


def parse_nvidia_smi(csv_text: str, fields: tuple[str, ...] = SMI_FIELDS) -> list[dict[str, Any]]:
    """`nvidia-smi --query-gpu=F1,F2 --format=csv,noheader,nounits` -> one dict per GPU.

    Numbers become int/float; "[N/A]" / "[Not Supported]" become None.
    """
    gpus = []
    for line in csv_text.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(fields):
            continue
        row: dict[str, Any] = {}
        for key, v in zip(fields, values):
            if v.startswith("[") or v in ("N/A", ""):
                row[key] = None
                continue
            try:
                row[key] = int(v) if v.lstrip("-").isdigit() else float(v)
            except ValueError:
                row[key] = v
        gpus.append(row)
    return gpus


def nvidia_smi(index: int = 0) -> dict[str, Any]:
    """The fields above for GPU `index`, or {} where nvidia-smi is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        out = subprocess.run([exe, f"--id={index}", f"--query-gpu={','.join(SMI_FIELDS)}",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return {}
    rows = parse_nvidia_smi(out)
    return rows[0] if rows else {}


@contextmanager
def cudnn_benchmark_flag(torch, on: bool):
    """`torch.backends.cudnn.benchmark` set to `on` inside, and back to what it was after.

    The flag is process-wide and cuDNN consults its autotuning cache only while it is set, so
    the driver sets it around each of its own forwards instead of once in `__init__`, where it
    stayed changed for everything else in the process (another device, the caller's code)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def require_cuda(torch) -> None:
    if torch.version.cuda is None:
        raise DeviceError(f"CUDA is not available: torch {torch.__version__} is a CPU-only build; "
                          f"install a CUDA build of torch on a machine with an NVIDIA GPU")
    if not torch.cuda.is_available():
        raise DeviceError(f"CUDA is not available: torch {torch.__version__} (CUDA "
                          f"{torch.version.cuda}) sees no GPU (driver missing, or "
                          f"CUDA_VISIBLE_DEVICES hides it)")


class CudaDevice(Device):
    name = "cuda"

    def __init__(self, precision: str = "fp32", batch_size: int = 1, channels_last: bool = True,
                 cuda_graphs: bool = False, gpu: int = 0, shape_warmup: int = 10,
                 cudnn_benchmark: bool = True):
        import torch

        if precision not in PRECISIONS:
            raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.batch_size, self.gpu, self.shape_warmup = batch_size, gpu, shape_warmup
        if self.batch_size < 1 or self.shape_warmup < 0:
            raise DeviceError("batch_size must be at least 1 and shape_warmup at least 0")
        require_cuda(torch)
        if self.gpu >= torch.cuda.device_count():
            raise DeviceError(f"no GPU {self.gpu}: torch sees {torch.cuda.device_count()}")
        self.torch = torch
        self.precision = precision
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs
        self.device = torch.device("cuda", self.gpu)
        self.cudnn_benchmark = cudnn_benchmark  # set only while this driver runs
        self._models: dict[str, Any] = {}
        self._shapes: dict[tuple[str, int], Any] = {}  # (fingerprint, res) -> (input, graph, out)
        self._smi = nvidia_smi(self.gpu)

    def info(self) -> DeviceInfo:
        t = self.torch
        props = t.cuda.get_device_properties(self.device)
        return DeviceInfo(
            name=self.name, hardware=props.name, runtime="torch-cuda",
            runtime_version=f"torch {t.__version__}, CUDA {t.version.cuda}, "
                            f"cuDNN {t.backends.cudnn.version()}",
            precision=self.precision, threads=None, batch_size=self.batch_size,
            extra={"driver": self._smi.get("driver_version") or "unknown",
                   "compute_capability": f"{props.major}.{props.minor}",
                   "channels_last": self.channels_last, "cuda_graphs": self.cuda_graphs,
                   "cudnn_benchmark": self.cudnn_benchmark,
                   "max_sm_clock_mhz": self._smi.get("clocks.max.sm")})

    def _model(self, spec: NetworkSpec):
        model = self._models.get(spec.fingerprint)
        if model is None:
            from latency_lab.build_torch import build_torch

            t = self.torch
            model = build_torch(spec).eval().to(self.device)
            if self.precision == "fp16":
                model = model.half()
            if self.channels_last:
                model = model.to(memory_format=t.channels_last)
            self._models[spec.fingerprint] = model
        return model

    def prepare(self, spec: NetworkSpec, resolutions: list[int]) -> None:
        self._model(spec)

    def _shape(self, spec: NetworkSpec, resolution: int):
        key = (spec.fingerprint, resolution)
        entry = self._shapes.get(key)
        if entry is None:
            t = self.torch
            model = self._model(spec)
            dtype = t.float16 if self.precision == "fp16" else t.float32
            gen = t.Generator(device=self.device).manual_seed(resolution)
            x = t.rand((self.batch_size, 3, resolution, resolution), generator=gen,
                       device=self.device, dtype=dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=t.channels_last)
            with t.inference_mode(), cudnn_benchmark_flag(t, self.cudnn_benchmark):
                for _ in range(self.shape_warmup):  # cudnn.benchmark autotunes this shape
                    model(x)
                t.cuda.synchronize(self.device)
                graph = None
                if self.cuda_graphs:
                    side = t.cuda.Stream(self.device)
                    side.wait_stream(t.cuda.current_stream(self.device))
                    with t.cuda.stream(side):
                        for _ in range(3):
                            model(x)
                    t.cuda.current_stream(self.device).wait_stream(side)
                    graph = t.cuda.CUDAGraph()
                    with t.cuda.graph(graph):
                        model(x)
            entry = (x, graph)
            self._shapes[key] = entry
        return entry

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        t = self.torch
        model = self._model(spec)
        x, graph = self._shape(spec, resolution)
        step = graph.replay if graph is not None else (lambda: model(x))
        samples = []
        with (t.inference_mode(), t.cuda.device(self.device),
              cudnn_benchmark_flag(t, self.cudnn_benchmark)):
            for _ in range(warmup_runs):
                step()
            events = [(t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True))
                      for _ in range(runs)]
            for start, end in events:
                start.record()
                step()
                end.record()
            t.cuda.synchronize(self.device)
            samples = [start.elapsed_time(end) for start, end in events]
        smi = nvidia_smi(self.gpu)
        facts = {k.replace(".", "_"): v for k, v in smi.items()
                 if k in ("clocks.sm", "clocks.mem", "temperature.gpu", "power.draw", "pstate")}
        return RunResult(samples_ms=tuple(samples), facts=facts)

    def close(self) -> None:
        self._shapes.clear()
        self._models.clear()
        if hasattr(self, "torch"):
            self.torch.cuda.empty_cache()
