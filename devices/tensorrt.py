"""Jetson (or any NVIDIA GPU) through TensorRT FP16 engines: the `jetson` driver.

Pipeline per network: `build_torch(spec)` -> ONNX (the legacy TorchScript exporter, explicit
opset, dynamic H and W; `export_onnx`) -> checked once with onnx's checker and onnxruntime at
two resolutions against torch (`check_onnx`) -> one TensorRT engine per resolution, built with
`BuilderFlag.FP16` and a persistent timing cache, cached on disk under `engine_key` (fingerprint,
resolution, batch, precision, TensorRT version, GPU). Timing: the name-based tensor API
(`num_io_tensors`, `get_tensor_name`, `set_input_shape`, `set_tensor_address`) and
`execute_async_v3` on a non-default pycuda stream, each run between two CUDA events.

TensorRT 8.5 introduced that API and 10.x keeps it; TensorRT 11 removed the FP16 builder flag
(weak typing is gone), so versions outside [8.5, 11) are refused with a clear message.
On a Jetson, `nvpmodel -q` (power mode) and `jetson_clocks --show` (are clocks pinned) are
recorded. Everything up to the engine runs without a GPU (and is tested in CI).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from latency_lab.fileio import write_atomic
from latency_lab.measure.api import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.models.build_onnx import INPUT, ONNX_OPSET, OUTPUT, export_onnx
from latency_lab.paths import cache_dir
from latency_lab.network.spec import NetworkSpec

MIN_TRT, MAX_TRT_EXCLUSIVE = (8, 5), (11,)


def check_trt_version(version: str) -> tuple[int, ...]:
    """Parse a TensorRT version and refuse the ones this driver cannot build FP16 engines with."""
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if not parts:
        raise DeviceError(f"cannot read the TensorRT version {version!r}")
    if parts >= MAX_TRT_EXCLUSIVE:
        raise DeviceError(f"TensorRT {version} is not supported: TensorRT 11 removed the FP16 "
                          f"builder flag (BuilderFlag.FP16, weakly typed networks) this driver "
                          f"builds its engines with; use TensorRT 8.5 to 10.x")
    if parts < MIN_TRT:
        raise DeviceError(f"TensorRT {version} is too old: the name-based tensor API "
                          f"(set_tensor_address, execute_async_v3) needs TensorRT >= 8.5")
    return parts


def engine_key(fingerprint: str, resolution: int, trt_version: str, precision: str = "fp16",
               batch_size: int = 1, gpu: str = "") -> str:
    """File name stem of a cached engine: an engine is only valid for exactly these."""
    gpu_tag = hashlib.sha256(gpu.encode()).hexdigest()[:8] if gpu else "anygpu"
    return f"{fingerprint}-r{resolution}-b{batch_size}-{precision}-trt{trt_version}-{gpu_tag}"


def check_onnx(spec: NetworkSpec, path: Path, resolutions: tuple[int, int] = (160, 224),
               rtol: float = 1e-3, atol: float = 1e-4, seed: int = 0) -> dict[int, float]:
    """onnx.checker + onnxruntime vs torch at two resolutions; max abs difference per resolution.

    Raises DeviceError when the exported graph is invalid or disagrees with torch.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from latency_lab.models.build_torch import build_torch

    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise DeviceError(f"invalid ONNX export of {spec.name}: {exc}") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = build_torch(spec, seed=seed).eval()
    diffs = {}
    for res in resolutions:
        x = np.random.default_rng(res).uniform(-1, 1, (1, 3, res, res)).astype(np.float32)
        got = session.run([OUTPUT], {INPUT: x})[0]
        with torch.inference_mode():
            want = model(torch.from_numpy(x)).numpy()
        if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
            raise DeviceError(f"ONNX export of {spec.name} disagrees with torch at {res}: max "
                              f"|diff| {float(np.abs(got - want).max()):.3g}")
        diffs[res] = float(np.abs(got - want).max())
    return diffs


def parse_nvpmodel(text: str) -> dict[str, Any]:
    """`nvpmodel -q` -> {"power_mode": "MAXN", "power_mode_id": 0}."""
    out: dict[str, Any] = {}
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if m:
        out["power_mode"] = m.group(1)
    ids = [l.strip() for l in text.splitlines() if l.strip().isdigit()]
    if ids:
        out["power_mode_id"] = int(ids[0])
    return out


def parse_jetson_clocks(text: str) -> dict[str, Any]:
    """`jetson_clocks --show` -> {"clocks_pinned": bool, "gpu_cur_hz": ...}.

    Pinned means every CPU, GPU and EMC line reports MinFreq == MaxFreq (what jetson_clocks
    sets); the GPU's current frequency is kept when printed.
    """
    lines = [l for l in text.splitlines() if "MinFreq=" in l and "MaxFreq=" in l]
    if not lines:
        return {}
    pinned = True
    out: dict[str, Any] = {}
    for line in lines:
        vals = dict(re.findall(r"(MinFreq|MaxFreq|CurrentFreq)=(\d+)", line))
        if vals.get("MinFreq") != vals.get("MaxFreq"):
            pinned = False
        if line.strip().startswith("GPU") and "CurrentFreq" in vals:
            out["gpu_cur_hz"] = int(vals["CurrentFreq"])
    out["clocks_pinned"] = pinned
    return out


def _run_tool(argv: list[str]) -> str:
    exe = shutil.which(argv[0])
    if not exe:
        return ""
    try:
        return subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=20).stdout
    except (subprocess.SubprocessError, OSError):
        return ""


def jetson_facts() -> dict[str, Any]:
    """Power mode and clock pinning where the Jetson tools exist (they need root for --show)."""
    return {**parse_nvpmodel(_run_tool(["nvpmodel", "-q"])),
            **parse_jetson_clocks(_run_tool(["jetson_clocks", "--show"]))}


class JetsonDevice(Device):
    name = "jetson"
    extras = ("torch", "onnx")   # TensorRT itself: its own message below (JetPack on a Jetson)
    needs_gpu = True

    def __init__(self, batch_size: int = 1, engine_dir: str | None = None,
                 onnx_check: bool = True, precision: str = "fp16"):
        if precision != "fp16":
            raise DeviceError("the jetson driver builds FP16 engines only (precision=fp16)")
        if batch_size < 1:
            raise DeviceError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.onnx_check = onnx_check
        try:
            import tensorrt as trt
        except ImportError:
            raise DeviceError("TensorRT is not installed: on a Jetson it comes with JetPack; "
                              "elsewhere `pip install tensorrt` (NVIDIA GPU needed)") from None
        check_trt_version(trt.__version__)
        try:
            import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
            import pycuda.driver as cuda
        except ImportError:
            raise DeviceError("pycuda is not installed: `pip install pycuda` (needs the CUDA "
                              "toolkit's nvcc)") from None
        except Exception as exc:  # pycuda.driver.Error: no device / no driver
            raise DeviceError(f"CUDA is not available to pycuda: {exc}") from None
        self.trt, self.cuda = trt, cuda
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.gpu = cuda.Device(0).name()
        self.engine_dir = Path(engine_dir) if engine_dir else cache_dir() / "tensorrt"
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        self.stream = cuda.Stream()  # non-default stream for every launch
        self._contexts: dict[tuple[str, int], Any] = {}
        self._facts = jetson_facts()

    def info(self) -> DeviceInfo:
        return DeviceInfo(name=self.name, hardware=self.gpu, runtime="tensorrt",
                          runtime_version=self.trt.__version__, precision="fp16",
                          batch_size=self.batch_size,
                          extra={k: v for k, v in self._facts.items() if k != "gpu_cur_hz"})

    # -- engines -------------------------------------------------------------------------------
    def _onnx(self, spec: NetworkSpec) -> Path:
        path = self.engine_dir / f"{spec.fingerprint}-b{self.batch_size}-opset{ONNX_OPSET}.onnx"
        if not path.exists():
            export_onnx(spec, path, batch_size=self.batch_size)
            if self.onnx_check:
                check_onnx(spec, path)
        return path

    def _engine_bytes(self, spec: NetworkSpec, resolution: int) -> bytes:
        trt = self.trt
        key = engine_key(spec.fingerprint, resolution, trt.__version__, "fp16", self.batch_size,
                         self.gpu)
        path = self.engine_dir / f"{key}.engine"
        if path.exists():
            return path.read_bytes()
        major = int(trt.__version__.split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        builder = trt.Builder(self.logger)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self._onnx(spec).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise DeviceError(f"TensorRT cannot parse the ONNX of {spec.name}: {errors}")
        config = builder.create_builder_config()
        config.set_flag(trt.BuilderFlag.FP16)
        cache_path = self.engine_dir / f"timing-trt{trt.__version__}.cache"
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        shape = (self.batch_size, 3, resolution, resolution)
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT, shape, shape, shape)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise DeviceError(f"TensorRT failed to build an engine for {spec.name} at {resolution}")
        data = bytes(serialized)
        write_atomic(path, data)
        write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
        return data

    def _context(self, spec: NetworkSpec, resolution: int):
        key = (spec.fingerprint, resolution)
        entry = self._contexts.get(key)
        if entry is None:
            import numpy as np

            trt, cuda = self.trt, self.cuda
            engine = trt.Runtime(self.logger).deserialize_cuda_engine(
                self._engine_bytes(spec, resolution))
            context = engine.create_execution_context()
            context.set_input_shape(INPUT, (self.batch_size, 3, resolution, resolution))
            buffers = []
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                shape = tuple(context.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                mem = cuda.mem_alloc(max(1, int(np.prod(shape)) * dtype.itemsize))
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    host = np.random.default_rng(resolution).random(shape).astype(dtype)
                    cuda.memcpy_htod(mem, host)
                context.set_tensor_address(name, int(mem))
                buffers.append(mem)
            entry = (engine, context, buffers)
            self._contexts[key] = entry
        return entry

    def prepare(self, spec: NetworkSpec, resolutions: list[int]) -> None:
        for r in resolutions:
            self._engine_bytes(spec, r)

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        cuda = self.cuda
        _, context, _ = self._context(spec, resolution)
        handle = self.stream.handle
        for _ in range(warmup_runs):
            if not context.execute_async_v3(handle):
                raise DeviceError(f"TensorRT execution failed for {spec.name} at {resolution}")
        pairs = [(cuda.Event(), cuda.Event()) for _ in range(runs)]
        for start, end in pairs:
            start.record(self.stream)
            context.execute_async_v3(handle)
            end.record(self.stream)
        self.stream.synchronize()
        samples = tuple(start.time_till(end) for start, end in pairs)
        facts = {k: v for k, v in jetson_facts().items() if k in ("clocks_pinned", "gpu_cur_hz")}
        return RunResult(samples_ms=samples, facts=facts)

    def close(self) -> None:
        self._contexts.clear()
