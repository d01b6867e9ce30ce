"""The host CPU through the real LiteRT interpreter (ai-edge-litert): the default device.

One interpreter per network, built from the dynamic-shape TFLite model and resized per
resolution; XNNPACK on unless asked otherwise; one thread by default; the process optionally
pinned to a CPU set (Linux). Times each `invoke()` with a monotonic clock. Takes a
`NetworkSpec` or a single-block `blocks.BlockModel` (the lookup table's blocks): both become a
dynamic-shape model whose input channels the interpreter reports.

The model comes from the `builder` option (`model_files`): `direct` (default) emits it in
memory (0.1-0.4 s for the presets on this loaded machine) and hands the bytes to the
interpreter; `keras` converts it (6 s unloaded, 20-40 s at load 9; cached on disk by
fingerprint), the reference route. The direct route adds
`builder: direct` to the device context, so its measurements never mix with converted ones
in the store; the converter route keeps the context it always had. `build_s` / `builds` count
the time spent making models and interpreters (a search reports the share).

Each visit also reports the host's clock and temperature where Linux exposes them
(`conditions`: the mean `cpu MHz` of /proc/cpuinfo or cpufreq, the hottest thermal zone), as
facts kept with the measurement; the protocol adds the load average. On this VM the clock is
a constant 2600 MHz and there is no thermal zone: then only what exists is reported.
"""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version

from collections import OrderedDict

import numpy as np

from latency_lab.measure.api import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.network.spec import NetworkSpec


MAX_INTERPRETERS = 32  # loaded networks kept per device (each holds weights + arena)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions() -> dict[str, float]:
    """The host CPUs' mean clock (MHz) and hottest thermal zone (deg C), where readable; read
    after a visit's runs (about 0.1 ms), never inside a timed run."""
    out: dict[str, float] = {}
    mhz = []
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        pass
    if mhz:
        out["cpu_mhz"] = round(sum(mhz) / len(mhz), 1)
    temps = []
    for zone in _thermal_zones():
        try:
            with open(zone) as f:
                temps.append(int(f.read().strip()) / 1000)
        except (OSError, ValueError):
            pass
    if temps:
        out["temp_c"] = max(temps)
    return out


def _thermal_zones() -> list[str]:
    import glob

    return sorted(glob.glob("/sys/class/thermal/thermal_zone*/temp"))


def parse_cpu_set(text: str) -> set[int]:
    """'0', '0,2', '0-3' -> set of CPU indices."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise DeviceError(f"malformed CPU set {text!r}: use e.g. 0 or 0,1 or 0-3") from None
    return cpus


class CpuDevice(Device):
    name = "cpu"
    # No unrecorded run after switching to another resolution (issue 26): on the sweeps of
    # benchmarks/sweep_overhead.py (B0 160:400:8, 300 s, load 13) the first run after a resize
    # was as fast as the visit's other runs (median ratio 0.996 without a warm-up, 1.003 after
    # one), while the warm-up cost 1 run in 9: wall / recorded time 1.19x with it, 1.07x
    # without. A point's first visit in a process still gets `warmup_first_visit` (3).
    warmup_after_switch = 0

    def __init__(self, threads: int = 1, affinity: str = "", xnnpack: bool = True,
                 model_dir: str | None = None, builder: str = "direct"):
        from latency_lab.models.files import check_builder

        if threads < 1:
            raise DeviceError("threads must be at least 1")
        self.builder = check_builder(builder)
        self.build_s, self.builds = 0.0, 0
        self.threads = int(threads)
        self.xnnpack = bool(xnnpack)
        self.model_dir = model_dir
        self.affinity = ""
        if affinity:
            cpus = parse_cpu_set(affinity)
            if not hasattr(os, "sched_setaffinity"):
                raise DeviceError("CPU pinning needs Linux (os.sched_setaffinity)")
            try:
                os.sched_setaffinity(0, cpus)
            except OSError as exc:
                raise DeviceError(f"cannot pin to CPUs {affinity}: {exc.strerror}") from None
            self.affinity = ",".join(str(c) for c in sorted(cpus))
        # most recently used last; a search visits hundreds of networks, so only the
        # MAX_INTERPRETERS most recent stay loaded (a reload costs milliseconds, no conversion)
        self._interpreters: OrderedDict[str, tuple[object, list[int]]] = OrderedDict()

    def info(self) -> DeviceInfo:
        try:
            litert = version("ai-edge-litert")
        except PackageNotFoundError:
            litert = "unknown"
        return DeviceInfo(
            name=self.name,
            hardware=f"{_cpu_model()} ({os.cpu_count()} logical CPUs, {platform.machine()})",
            runtime="litert",
            runtime_version=litert,
            precision="fp32",
            threads=self.threads,
            affinity=self.affinity,
            extra={"delegate": "xnnpack" if self.xnnpack else "none", "os": platform.system(),
                   **({"builder": "direct"} if self.builder == "direct" else {})},
        )

    def prepare(self, spec: NetworkSpec, resolutions: list[int]) -> None:
        self._interpreter(spec)

    def _interpreter(self, spec: NetworkSpec):
        entry = self._interpreters.get(spec.fingerprint)
        if entry is not None:
            self._interpreters.move_to_end(spec.fingerprint)
        else:
            t0 = time.perf_counter()
            interp = self._load(spec)
            self.build_s += time.perf_counter() - t0
            self.builds += 1
            entry = (interp, [0])  # [current resolution]
            self._interpreters[spec.fingerprint] = entry
            while len(self._interpreters) > MAX_INTERPRETERS:
                self._interpreters.popitem(last=False)
        return entry

    def _load(self, spec: NetworkSpec):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from latency_lab.models.files import tflite_bytes, tflite_path
        from latency_lab.models.litert import quiet_stderr

        resolver = (OpResolverType.AUTO if self.xnnpack
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        if self.builder == "direct" and not self.model_dir:
            source, what = {"model_content": tflite_bytes(spec, "direct")}, spec.name
        else:
            path = tflite_path(spec, self.model_dir, self.builder)
            source, what = {"model_path": str(path)}, str(path)
        try:
            with quiet_stderr():   # LiteRT's "Created ... XNNPACK delegate" line, not the bar
                interp = Interpreter(**source, num_threads=self.threads,
                                     experimental_op_resolver_type=resolver)
                interp.allocate_tensors()
            return interp
        except (ValueError, RuntimeError) as exc:
            raise DeviceError(f"LiteRT cannot load {what}: {exc}") from None

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        interp, current = self._interpreter(spec)
        if current[0] != resolution:
            detail = interp.get_input_details()[0]
            index = detail["index"]
            channels = int(detail["shape_signature"][-1])  # 3, or a block model's c_in
            interp.resize_tensor_input(index, [1, resolution, resolution, channels], strict=True)
            interp.allocate_tensors()
            rng = np.random.default_rng(resolution)
            interp.set_tensor(index, rng.random((1, resolution, resolution, channels), np.float32))
            current[0] = resolution
        invoke = interp.invoke
        for _ in range(warmup_runs):
            invoke()
        samples = []
        clock = time.perf_counter_ns
        for _ in range(runs):
            t0 = clock()
            invoke()
            samples.append((clock() - t0) / 1e6)
        return RunResult(samples_ms=tuple(samples), facts=conditions())

    def close(self) -> None:
        self._interpreters.clear()
