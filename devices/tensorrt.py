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
On a Jetson, `nvpmodel -q` (power mode) and `jetson_clocks --show` (are clocks pinned, by what
`jetson_clocks` itself sets: see `parse_jetson_clocks`) are recorded; `--show` needs root, and
without it the driver says so in one line and records the clocks as unknown. Everything up to
the engine runs without a GPU (and is tested in CI).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
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


# What `jetson_clocks` (no option) sets, read from NVIDIA's script (/usr/bin/jetson_clocks,
# "Copyright (c) 2015-2023, NVIDIA CORPORATION", L4T R35 / JetPack 5, tegra186/194/210/234):
#   do_cpu:  scaling_min_freq := scaling_max_freq on every core   -> cpuN: MinFreq == MaxFreq
#   do_igpu: devfreq min_freq := max_freq                          -> GPU MinFreq == MaxFreq
#   do_dgpu: nvidia-smi -ac MAX_MEM,MAX_GRA (application clocks)   -> dGPU Current == Max
#   do_emc:  mrq_rate_locked := 1, rate := max; min_rate untouched -> EMC FreqOverride=1
# do_dla, do_pva and do_cvnas only *show* their clocks (Orin prints MinFreq=0 there), so those
# lines say nothing about pinning. As non-root the script prints its "SOC family:..." line and
# then `Error: Run this script($0) as a root user` on stdout, and exits 1 (main()).
_FREQ = re.compile(r"(MinFreq|MaxFreq|CurrentFreq|FreqOverride|CurrentMemFreq|MaxMemFreq|"
                   r"CurrentGraFreq|MaxGraFreq|Online)=(\d+)")
NEEDS_ROOT = "unknown: jetson_clocks --show must run as root"


def parse_jetson_clocks(text: str) -> dict[str, Any]:
    """`jetson_clocks --show` -> {"clocks_pinned": bool, "gpu_cur_hz": ...}, with
    "clocks_unpinned" naming what is not pinned, or {"clocks": NEEDS_ROOT} when the script
    refused to run as non-root, or {} when it printed nothing it knows.

    Pinned means what `jetson_clocks` sets holds (the table above): every online CPU core at
    MinFreq == MaxFreq, the integrated GPU at MinFreq == MaxFreq (a discrete GPU's application
    clocks at their maximum) and the EMC (memory) clock overridden to its maximum,
    `FreqOverride=1`. The GPU's current frequency is kept when printed.
    """
    out: dict[str, Any] = {}
    unpinned: list[str] = []
    cpus_seen = cpus_low = 0
    for line in text.splitlines():
        name = line.strip().split(":", 1)[0].split(" ", 1)[0]
        vals = {k: int(v) for k, v in _FREQ.findall(line)}
        if re.fullmatch(r"cpu\d+", name) and "MinFreq" in vals and vals.get("Online", 1) == 1:
            cpus_seen += 1
            cpus_low += vals["MinFreq"] != vals.get("MaxFreq")
        elif name == "GPU" and "MinFreq" in vals:
            if vals["MinFreq"] != vals.get("MaxFreq"):
                unpinned.append(f"GPU MinFreq={vals['MinFreq']} < MaxFreq={vals.get('MaxFreq')}")
            if "CurrentFreq" in vals:
                out["gpu_cur_hz"] = vals["CurrentFreq"]
        elif name == "dGPU" and ("MaxGraFreq" in line or "MaxMemFreq" in line):
            for cur, top in (("CurrentGraFreq", "MaxGraFreq"), ("CurrentMemFreq", "MaxMemFreq")):
                if top in vals and vals.get(cur) != vals[top]:
                    unpinned.append(f"dGPU {cur}={vals.get(cur)} < {top}={vals[top]}")
        elif name == "EMC" and "FreqOverride" in vals:
            if vals["FreqOverride"] != 1:
                unpinned.append("EMC FreqOverride=0")
    if cpus_low:
        unpinned.insert(0, f"{cpus_low} of {cpus_seen} CPU cores MinFreq < MaxFreq")
    if cpus_seen or "gpu_cur_hz" in out or "FreqOverride=" in text:
        out["clocks_pinned"] = not unpinned
        if unpinned:
            out["clocks_unpinned"] = "; ".join(unpinned)
    elif "as a root user" in text:
        out["clocks"] = NEEDS_ROOT
    return out


def _run_tool(argv: list[str]) -> str:
    """What the tool printed (stdout and stderr), or "" where it is not installed or hangs."""
    exe = shutil.which(argv[0])
    if not exe:
        return ""
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=20)
    except (subprocess.SubprocessError, OSError):
        return ""
    return p.stdout + p.stderr


def jetson_facts(say_unknown: bool = False) -> dict[str, Any]:
    """Power mode and clock pinning where the Jetson tools exist; with `say_unknown`, one
    line on stderr when `jetson_clocks --show` refused to run as non-root."""
    facts = {**parse_nvpmodel(_run_tool(["nvpmodel", "-q"])),
             **parse_jetson_clocks(_run_tool(["jetson_clocks", "--show"]))}
    if say_unknown and facts.get("clocks") == NEEDS_ROOT:
        print("warning: jetson_clocks --show must run as root, so whether the clocks are "
              "pinned is not recorded (pin them with `sudo jetson_clocks` first)",
              file=sys.stderr)
    return facts


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
        self._facts = jetson_facts(say_unknown=True)

    def info(self) -> DeviceInfo:
        return DeviceInfo(name=self.name, hardware=self.gpu, runtime="tensorrt",
                          runtime_version=self.trt.__version__, precision="fp16",
                          batch_size=self.batch_size,
                          extra={k: v for k, v in self._facts.items()
                                 if k not in ("gpu_cur_hz", "clocks_unpinned")})

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
        facts = {k: v for k, v in jetson_facts().items()
                 if k in ("clocks_pinned", "clocks_unpinned", "gpu_cur_hz")}
        return RunResult(samples_ms=samples, facts=facts)

    def close(self) -> None:
        self._contexts.clear()
