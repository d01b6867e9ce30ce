"""A desktop NVIDIA GPU through torch on CUDA (the thesis's RTX 3090 without TensorRT).

The network is `build_torch(spec)` in eval mode, fp32 or fp16 (`precision`), NCHW or
channels-last (`channels_last`, default on: cuDNN's fast NHWC kernels), batch `batch_size`.

Per input shape, once per process (`setup`, which the protocol times as the point's `setup_s`):
the input is a view of one buffer sized for the largest resolution; the first forwards at a new
shape pay cuDNN's plan building, and with `cudnn_benchmark` (default off, set only around this
driver's forwards) its autotuner too, during `shape_warmup` unrecorded forwards. Measured on an
H100 80GB (torch 2.11, cuDNN 9.19; results/cuda/): a B0 set-up took 1.0-2.8 s per new shape at
batch 1 with autotuning off (mean 1.7 s over 25 shapes) against a mean of 2.9 s with it on (15
shapes), and 0.7-3.5 s at batch 256 either way (fp16 and fp32, means 1.8-2.2 s, from the sweep
CSVs' setup_s): most of it is the first forward at the new shape (cuDNN building plans for its
~65 convolutions; with cuDNN disabled the first forward costs no more than the next, but its
kernels run 10x slower). Autotuning changed the batch-256 fp16 latency by under 0.3% at 224,
288 and 384 px, so it is off by default: `-O cudnn_benchmark=true` for a network measured at
few shapes for long. Plans are cached per process and shape, so a shape set up once costs
little the next time. Then the forward is captured in a CUDA graph (`cuda_graphs`, default on;
a shape whose capture fails runs eager, and says so in its facts). All graphs share one memory
pool: only timing is read, never their outputs, so one graph's replay may overwrite another's
activations without harm, and a sweep of 61 shapes at batch 256 does not hold 61 sets of
activations.

The launch-bound check (`launch_check`), also per shape: at batch 1 an eager forward waits
for Python to launch some 250 kernels (an H100's fp32 eager medians wandered between 4.3 and
9.7 ms, fp16 graph replays gave a smooth 0.96 to 1.25 ms). A few eager forwards are timed
with CUDA events and, each from an idle GPU, by the host's time to launch them; with a graph,
a few replays too. Eager execution is launch-bound when its GPU time is at least
`LAUNCH_RATIO` times a replay's, or (no graph) when the host needs at least `HOST_SHARE` of
the GPU time to launch it. The facts `execution` (graph/eager), `launch_bound` (the recorded
samples measure the host: eager and launch-bound), `eager_ms`, `graph_ms` and
`eager_over_graph` become columns of the sweep CSV, and the sweep says so on the terminal.

Each run is timed with a pair of CUDA events on the current stream. Records the GPU name,
compute capability, driver, CUDA and cuDNN versions in `info()`, and the SM/memory clocks,
temperature and power reported by `nvidia-smi` (read at most every `SMI_INTERVAL_S`) in each
sample's facts. Without CUDA (a CPU build of torch, or no GPU) it refuses with a DeviceError
saying which.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from latency_lab.measure.api import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.network.spec import NetworkSpec

PRECISIONS = ("fp32", "fp16")
SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm",
              "temperature.gpu", "power.draw", "pstate")
SMI_INTERVAL_S = 2.0   # nvidia-smi takes ~30 ms: once per visit would dominate batch-1 sweeps
LAUNCH_RATIO = 1.25    # eager GPU time >= this x a graph replay's: eager is launch-bound
HOST_SHARE = 0.8       # no graph: host launch time >= this share of the GPU time: launch-bound
CHECK_RUNS = 3         # eager forwards and graph replays timed by the launch check
MAX_SHAPES = 256       # set-up shapes kept (a search visits many networks); older ones redone
MAX_MODELS = 32


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


def launch_check(eager_ms: float, host_ms: float, graph_ms: float | None) -> dict[str, Any]:
    """Whether eager execution of a shape is launch-bound, from the median GPU time of an
    eager forward (`eager_ms`), the host's time to launch one from an idle GPU (`host_ms`)
    and a graph replay's GPU time (`graph_ms`, None without a graph). See the module doc."""
    facts: dict[str, Any] = {"eager_ms": round(eager_ms, 4), "host_launch_ms": round(host_ms, 4)}
    if graph_ms is not None and graph_ms > 0:
        facts["graph_ms"] = round(graph_ms, 4)
        facts["eager_over_graph"] = round(eager_ms / graph_ms, 3)
        facts["eager_launch_bound"] = eager_ms >= LAUNCH_RATIO * graph_ms
    else:
        facts["eager_launch_bound"] = host_ms >= HOST_SHARE * eager_ms
    return facts


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


@dataclass
class _Shape:
    x: Any                      # the input, a view of the shared buffer
    graph: Any = None           # torch.cuda.CUDAGraph, or None (eager)
    facts: dict = field(default_factory=dict)


class CudaDevice(Device):
    name = "cuda"
    extras = ("torch",)
    needs_gpu = True

    def __init__(self, precision: str = "fp32", batch_size: int = 1, channels_last: bool = True,
                 cuda_graphs: bool = True, gpu: int = 0, shape_warmup: int = 10,
                 cudnn_benchmark: bool = False):
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
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs
        self.device = torch.device("cuda", self.gpu)
        self.cudnn_benchmark = cudnn_benchmark  # set only while this driver runs
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._shapes: OrderedDict[tuple[str, int], _Shape] = OrderedDict()
        self._buffer = None            # input storage for the largest resolution so far
        self._pool = None              # the graphs' shared memory pool
        self._smi = nvidia_smi(self.gpu)
        self._smi_at = time.monotonic()

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
            from latency_lab.models.build_torch import build_torch

            model = build_torch(spec).eval().to(self.device, dtype=self.dtype)
            if self.channels_last:
                model = model.to(memory_format=self.torch.channels_last)
            self._models[spec.fingerprint] = model
            while len(self._models) > MAX_MODELS:
                old, _ = self._models.popitem(last=False)
                for key in [k for k in self._shapes if k[0] == old]:
                    del self._shapes[key]
        self._models.move_to_end(spec.fingerprint)
        return model

    def prepare(self, spec: NetworkSpec, resolutions: list[int]) -> None:
        self._model(spec)
        if resolutions:
            self._input(max(resolutions))

    def _input(self, resolution: int):
        """A (batch, 3, r, r) input viewing one random buffer (channels-last strides when
        asked); a larger resolution than the buffer holds grows it, and the shapes set up on
        the old buffer (their graphs read its address) are set up again when next used."""
        t, n = self.torch, self.batch_size * 3 * resolution * resolution
        if self._buffer is None or self._buffer.numel() < n:
            self._shapes.clear()
            self._buffer = None
            gen = t.Generator(device=self.device).manual_seed(0)
            self._buffer = t.rand(n, generator=gen, device=self.device, dtype=self.dtype)
        flat = self._buffer[:n]
        if self.channels_last:   # NHWC storage seen as NCHW: what .to(channels_last) gives
            return flat.view(self.batch_size, resolution, resolution, 3).permute(0, 3, 1, 2)
        return flat.view(self.batch_size, 3, resolution, resolution)

    def setup(self, spec: NetworkSpec, resolution: int) -> dict[str, Any]:
        """Autotune and warm up the shape, capture its graph, run the launch check."""
        key = (spec.fingerprint, resolution)
        self._shapes.pop(key, None)
        t = self.torch
        model = self._model(spec)
        x = self._input(resolution)
        try:
            with t.inference_mode(), t.cuda.device(self.device), \
                    cudnn_benchmark_flag(t, self.cudnn_benchmark):
                for _ in range(self.shape_warmup):   # cudnn.benchmark autotunes this shape
                    model(x)
                t.cuda.synchronize(self.device)
                eager_ms, host_ms = self._time_eager(model, x)
                graph, error = self._capture(model, x) if self.cuda_graphs else (None, "")
                graph_ms = self._time_graph(graph) if graph is not None else None
        except t.cuda.OutOfMemoryError:
            raise DeviceError(f"GPU out of memory for {spec.name} at {resolution} px, batch "
                              f"{self.batch_size}, {self.precision}: use a smaller batch_size") from None
        facts = launch_check(eager_ms, host_ms, graph_ms)
        facts["execution"] = "graph" if graph is not None else "eager"
        facts["launch_bound"] = graph is None and facts["eager_launch_bound"]
        if error:
            facts["cuda_graph_error"] = error
        self._shapes[key] = _Shape(x, graph, facts)
        while len(self._shapes) > MAX_SHAPES:
            self._shapes.popitem(last=False)
        return dict(facts)

    def _time_eager(self, model, x) -> tuple[float, float]:
        """Median GPU time of an eager forward and of the host's time to launch it, each
        forward started on an idle GPU (a full launch queue would make the host wait)."""
        t = self.torch
        gpu, host = [], []
        for _ in range(CHECK_RUNS):
            start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
            t.cuda.synchronize(self.device)
            start.record()
            t0 = time.perf_counter()
            model(x)
            host.append((time.perf_counter() - t0) * 1e3)
            end.record()
            t.cuda.synchronize(self.device)
            gpu.append(start.elapsed_time(end))
        return statistics.median(gpu), statistics.median(host)

    def _capture(self, model, x):
        """(graph, "") or (None, why): the forward captured in a CUDA graph, after warm-up
        on a side stream as torch's CUDA-graph notes ask."""
        t = self.torch
        try:
            side = t.cuda.Stream(self.device)
            side.wait_stream(t.cuda.current_stream(self.device))
            with t.cuda.stream(side):
                for _ in range(2):
                    model(x)
            t.cuda.current_stream(self.device).wait_stream(side)
            if self._pool is None:
                self._pool = t.cuda.graph_pool_handle()
            graph = t.cuda.CUDAGraph()
            with t.cuda.graph(graph, pool=self._pool):
                model(x)
            t.cuda.synchronize(self.device)
            return graph, ""
        except t.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # a model torch cannot capture: measure it eager, say why
            t.cuda.synchronize(self.device)
            return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    def _time_graph(self, graph) -> float:
        t = self.torch
        graph.replay()
        times = []
        for _ in range(CHECK_RUNS):
            start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            t.cuda.synchronize(self.device)
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        t = self.torch
        model = self._model(spec)
        shape = self._shapes.get((spec.fingerprint, resolution))
        if shape is None:
            self.setup(spec, resolution)
            shape = self._shapes[(spec.fingerprint, resolution)]
        self._shapes.move_to_end((spec.fingerprint, resolution))
        x = shape.x
        step = shape.graph.replay if shape.graph is not None else (lambda: model(x))
        with t.inference_mode(), t.cuda.device(self.device), \
                cudnn_benchmark_flag(t, self.cudnn_benchmark):
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
        facts = {k: shape.facts[k] for k in ("execution", "launch_bound")}
        return RunResult(samples_ms=tuple(samples), facts={**self._smi_facts(), **facts})

    def _smi_facts(self) -> dict[str, Any]:
        """Clocks, temperature, power: read again when the last reading is SMI_INTERVAL_S old."""
        if time.monotonic() - self._smi_at >= SMI_INTERVAL_S:
            self._smi = nvidia_smi(self.gpu) or self._smi
            self._smi_at = time.monotonic()
        return {k.replace(".", "_"): v for k, v in self._smi.items()
                if k in ("clocks.sm", "clocks.mem", "temperature.gpu", "power.draw", "pstate")}

    def close(self) -> None:
        self._shapes.clear()
        self._models.clear()
        self._buffer = None
        self._pool = None
        if hasattr(self, "torch"):
            self.torch.cuda.empty_cache()
