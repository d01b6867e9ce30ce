"""Android phones over ADB with the official TFLite/LiteRT `benchmark_model` binary.

`pixel2` (the thesis's phone: one thread pinned to the big cores, `taskset f0`) and the generic
`android` (no pinning unless asked) are the same driver with different profiles
(`devices/profiles.py`). What happens:

* adbutils talks to the ADB server over its socket (`adb_host`/`adb_port`, default from
  `ANDROID_ADB_SERVER_HOST`/`ANDROID_ADB_SERVER_PORT`, i.e. 127.0.0.1:5037); the device is the
  one `serial` names (or `ANDROID_SERIAL`), else the only one attached (`adb_transport.py`: the
  connection and every shell command and push go through it; connecting waits at most
  `connect_timeout_s`, each request `request_timeout_s`, a benchmark visit `timeout_s`);
* the benchmark binary (option `binary`, env `LATENCY_LAB_BENCHMARK_BINARY`, or the profile) is
  pushed once under a name holding its content hash and made executable; the dynamic-shape
  model (`model_files.tflite_path`: emitted directly by default, `builder=keras` converts it
  and keeps the context this driver always had) is pushed per network under the name that
  says its builder, and removed on `close()`;
* before the first measurement (on `info()`), the binary runs once on a two-layer probe
  model with the flags every visit uses, and its own report of what it applied (parameter
  lines, `Unconsumed cmdline flags`, the delegate lines: `tflite_bench.applied`) is what is
  recorded: `delegate` is the delegate it applied, `delegate_asked` and `flags_ignored` appear
  when that is not what was asked (a TF 1.x build ignores --use_xnnpack silently), with one
  warning line; each visit records the delegate its own output names (`delegate_applied`);
* each `sample()` is one `adb shell` running `android_bench/run_bench.sh`, which invokes the
  binary (built and quoted by `tflite_bench.benchmark_command`) and reads thermal state and
  the pinned cores' governor and clocks before and after;
* per-run samples come from one timed run per invocation (see `tflite_bench`); with
  `per_run=false` one invocation makes all runs and only its average is kept (summary_only);
* throttling (thermal status >= `throttle_status`, or the probe, a short fixed benchmark,
  slower than its baseline by more than `probe_slowdown`) pauses `cooldown_s` at a time until it
  clears (at most `max_cooldown_s`) and takes the visit again; facts record it.

Drivers only measure: the sweep protocol decides how often; the store keeps what was taken, so
a phone unplugged mid-sweep loses at most one visit (`DeviceError`, then run again to resume).

This module is the driver's policy: the benchmark binary and the CPU set, governors and thermal
checks, each visit's command and the reading of its output, and the DeviceInfo.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
import posixpath
import sys
import time
from pathlib import Path
from typing import Any, Callable

from latency_lab.measure.api import Device, DeviceError, DeviceInfo, RunResult
from latency_lab.network.spec import NetworkSpec

from latency_lab.devices import tflite_bench
from latency_lab.devices.adb_transport import CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S, AdbTransport
from latency_lab.devices.profiles import AndroidProfile, get_profile, mask_cpus

# package data of latency_lab.android_bench (the repository's android_bench/ folder)
RUN_SCRIPT = Path(str(resources.files("latency_lab.android_bench") / "run_bench.sh"))
BINARY_ENV = "LATENCY_LAB_BENCHMARK_BINARY"
INPUT_LAYER = "image"  # both builders name the input tensor "image"
# Android thermal status (android.os.PowerManager.THERMAL_STATUS_*): 0 none, 1 light,
# 2 moderate, 3 severe, 4 critical, 5 emergency, 6 shutdown. Light throttling already lowers
# big-core clocks on Pixels, hence the default threshold 1.
DEFAULT_THROTTLE_STATUS = 1
README_HINT = "see android_bench/README.md for where to get benchmark_model for arm64"
# The probe that reads what the binary applies: a stem and one block, 32 px; any model would do.
PROBE = NetworkSpec.from_dict({
    "name": "benchmark-model-probe", "resolution": 32, "num_classes": 2, "activation": "relu",
    "stem": {"width": 8, "kernel": 3, "stride": 2}, "head": {"width": 16},
    "stages": [{"width": 8, "depth": 1, "kernel": 3, "expansion": 1, "stride": 1,
                "se_ratio": 0.0}]})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cpu_set_to_mask(text: str) -> str:
    from latency_lab.devices.cpu import parse_cpu_set

    return format(sum(1 << c for c in parse_cpu_set(text)), "x")


def parse_probes(output: str) -> dict[str, dict[str, str]]:
    """`LL_PROBE phase key=value` lines -> {phase: {key: value}}."""
    probes: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        parts = line.strip().split(" ", 2)
        if len(parts) == 3 and parts[0] == "LL_PROBE" and "=" in parts[2]:
            key, _, value = parts[2].partition("=")
            probes.setdefault(parts[1], {})[key] = value.strip()
    return probes


def split_invocations(output: str) -> list[tuple[str, int]]:
    """The output and exit status of each benchmark invocation between LL_BEGIN/LL_END."""
    runs: list[tuple[str, int]] = []
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("LL_BEGIN "):
            current = []
        elif line.startswith("LL_END ") and current is not None:
            rc = int(line.rsplit("rc=", 1)[1])
            runs.append(("\n".join(current), rc))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:  # the shell died inside an invocation
        runs.append(("\n".join(current), -1))
    return runs


def _facts(probes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What a visit records: thermal state and the pinned cores' governor and clocks after it
    (the run script's probes), and the delegate the binary's output names (`_run_visit` adds
    it to the probes as phase "applied")."""
    keep = ("thermal_status", "temp_max_mc", "_scaling_governor", "_scaling_cur_freq",
            "_scaling_max_freq")
    return {**{k: (int(v) if v.lstrip("-").isdigit() else v)
               for k, v in probes.get("after", {}).items() if k.endswith(keep)},
            **{f"{k}_applied": v for k, v in probes.get("applied", {}).items()}}


def _failure_message(rc: int, text: str, binary: str) -> str:
    errors = tflite_bench.error_lines(text)
    tail = " | ".join((errors or [l.strip() for l in text.strip().splitlines()])[-3:]) or "no output"
    if "but flags call it" in text:   # TF 1.x aborts when the input is named otherwise
        return f"benchmark_model refused the model's input name (--input_layer={INPUT_LAYER}): {tail}"
    if rc == 126:
        return f"benchmark binary {binary} is not executable on the device ({tail})"
    if rc == 127:
        return f"benchmark binary {binary} not found on the device ({tail})"
    if rc > 128:
        import signal

        try:
            name = signal.Signals(rc - 128).name
        except ValueError:
            name = f"signal {rc - 128}"
        return f"benchmark_model crashed ({name}): {tail}"
    return f"benchmark_model failed with exit status {rc}: {tail}"


class AndroidDevice(Device):
    name = "android"
    extras = ("android",)
    profile_name = "android"

    def __init__(self, serial: str | None = None, adb_host: str | None = None,
                 adb_port: int | None = None, binary: str | None = None,
                 threads: int | None = None, affinity: str | None = None,
                 mask: str | None = None, xnnpack: bool = True,
                 per_run: bool = True, throttle_check: bool = True,
                 throttle_status: int = DEFAULT_THROTTLE_STATUS,
                 probe_slowdown: float = 0.10, probe_every: int = 10,
                 probe_resolution: int | None = None,
                 cooldown_s: float = 30.0, max_cooldown_s: float = 600.0,
                 remote_dir: str | None = None, model_dir: str | None = None,
                 timeout_s: float = 900.0, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, profile: str | None = None,
                 builder: str = "direct", sleep: Callable[[float], None] = time.sleep):
        from latency_lab.models.files import check_builder

        self.builder = check_builder(builder)
        try:
            self.profile: AndroidProfile = get_profile(profile or self.profile_name)
        except KeyError as exc:
            raise DeviceError(str(exc.args[0])) from None
        p = self.profile
        self.threads = threads if threads is not None else p.threads
        self.throttle_status = throttle_status
        self.probe_slowdown = probe_slowdown
        self.probe_every = probe_every
        self.probe_resolution = probe_resolution or None
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.timeout_s = timeout_s
        if self.threads < 1:
            raise DeviceError("threads must be at least 1")
        if affinity and mask:
            raise DeviceError("give either affinity (CPU ids) or mask (hex), not both")
        self.mask = (_cpu_set_to_mask(affinity) if affinity else (mask if mask is not None
                                                                  else p.mask)).lower()
        try:
            self.cpus = mask_cpus(self.mask) if self.mask else ()
        except ValueError:
            raise DeviceError(f"malformed CPU mask {self.mask!r}: use hex such as f0") from None
        self.xnnpack = xnnpack
        self.per_run = per_run
        self.throttle_check = throttle_check
        self.remote_dir = remote_dir or p.remote_dir
        if not self.remote_dir.startswith("/"):   # no remote path may look like an option
            raise DeviceError(f"remote_dir must be an absolute path on the phone, got "
                              f"{self.remote_dir!r}")
        self.model_dir = model_dir
        self._sleep = sleep

        binary = binary or os.environ.get(BINARY_ENV) or p.binary
        if not binary:
            raise DeviceError(f"no benchmark binary given: pass --device-option binary=PATH or set "
                              f"{BINARY_ENV}; {README_HINT}")
        self.binary = Path(binary).expanduser()
        if not self.binary.is_file():
            raise DeviceError(f"benchmark binary {self.binary} does not exist; {README_HINT}")
        self.binary_sha256 = _sha256(self.binary)

        self.adb = AdbTransport.connect(adb_host, adb_port, serial, connect_timeout_s,
                                        request_timeout_s)
        self.serial = self.adb.serial
        self._props = self.adb.getprops()
        self._governors = self._read_governors()
        self._remote_binary = ""
        self._remote_script = ""
        self._models: dict[str, str] = {}         # fingerprint -> remote model path
        self._probe_res: dict[str, int] = {}      # fingerprint -> probe resolution
        self._baseline_us: dict[str, float] = {}  # fingerprint -> probe baseline
        self._calls = 0
        self._throttle: dict[tuple[str, int], dict[str, float]] = {}
        self._applied: tflite_bench.Applied | None = None   # the binary's report, see applied()

    def _read_governors(self) -> dict[str, str]:
        govs = {}
        for c in self.cpus:
            path = f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
            out, rc = self.adb.shell(f"cat -- {tflite_bench.shell_command([path])} 2>/dev/null",
                                     "reading the CPU governor")
            if rc == 0 and out.strip():
                govs[f"cpu{c}"] = out.strip()
        return govs

    def applied(self) -> tflite_bench.Applied:
        """What the binary applies of the flags every visit passes, by its own report on a
        probe model (once per device; a warning line when it is not what was asked)."""
        if self._applied is None:
            remote = self._model(PROBE)
            argv = self.command(remote, PROBE.resolution, 1, 1)
            text, rc = self.adb.shell(f"{tflite_bench.shell_command(argv)} 2>&1",
                                      "checking what benchmark_model applies", self.timeout_s)
            try:
                tflite_bench.timed_runs(tflite_bench.parse_benchmark_output(text))
                failed = rc != 0
            except tflite_bench.BenchmarkOutputError:
                failed = True   # no timing at all (TF 1.x exits 0 when it fails)
            if failed:
                raise DeviceError(f"benchmark_model cannot run a probe model on {self.serial}: "
                                  f"{_failure_message(rc, text, self._remote_binary)}")
            self._applied = tflite_bench.applied(argv, text)
            if self._applied.note():
                print(f"warning: {self._applied.note()} (an older build?); recorded as "
                      f"delegate={self._applied.delegate}", file=sys.stderr)
        return self._applied

    # -- Device API ----------------------------------------------------------------------------
    def info(self) -> DeviceInfo:
        applied = self.applied()
        props = self._props
        model = props.get("ro.product.model", "unknown Android device")
        soc = props.get("ro.soc.model") or props.get("ro.board.platform", "")
        extra = {
            "android_version": props.get("ro.build.version.release", ""),
            "sdk": props.get("ro.build.version.sdk", ""),
            "abi": props.get("ro.product.cpu.abi", ""),
            "build": props.get("ro.build.fingerprint", ""),
            "delegate": applied.delegate,     # what the binary says it applied
            **({"delegate_asked": applied.asked} if applied.differs else {}),
            **({"flags_ignored": " ".join(applied.ignored)} if applied.ignored else {}),
            "governors": ",".join(f"{k}={v}" for k, v in sorted(self._governors.items())),
            "profile": self.profile.name,
            "samples": "per-run" if self.per_run else "summary",
            **({"builder": "direct"} if self.builder == "direct" else {}),
        }
        return DeviceInfo(name=self.name, hardware=f"{model} ({soc})" if soc else model,
                          runtime="tflite-benchmark",
                          runtime_version=f"benchmark_model sha256:{self.binary_sha256[:16]}",
                          precision="fp32", threads=self.threads,
                          affinity=f"mask {self.mask}" if self.mask else "",
                          extra=extra)

    def _ensure_tools(self) -> None:
        if self._remote_binary:
            return
        d = self.remote_dir
        q = tflite_bench.shell_command
        # `--` before every path: a directory named "-x" must not be read as options
        self.adb.check(f"mkdir -p -- {q([d + '/bin', d + '/models'])}",
                       "creating the work directory")
        remote_bin = posixpath.join(d, "bin", f"benchmark_model-{self.binary_sha256[:16]}")
        out, rc = self.adb.shell(f"test -f {q([remote_bin])}", "looking for the binary")
        if rc != 0:  # not there yet: push once; the name holds the content hash
            self.adb.push(self.binary, remote_bin, 0o755, "the benchmark binary")
        self.adb.check(f"chmod 755 -- {q([remote_bin])}", "making the binary executable")
        out, rc = self.adb.shell(f"test -x {q([remote_bin])}", "checking the binary")
        if rc != 0:
            raise DeviceError(f"benchmark binary {remote_bin} is not executable on "
                              f"{self.serial} (noexec storage?)")
        script = RUN_SCRIPT.read_bytes()
        remote_script = posixpath.join(d, f"run_bench-{hashlib.sha256(script).hexdigest()[:12]}.sh")
        self.adb.push(script, remote_script, 0o644, "the run script")
        self._remote_binary, self._remote_script = remote_bin, remote_script

    def prepare(self, spec: NetworkSpec, resolutions: list[int]) -> None:
        self.applied()
        self._model(spec)
        if resolutions:
            self._probe_res.setdefault(spec.fingerprint, self.probe_resolution or min(resolutions))
        if self.throttle_check and self.probe_every > 0 and spec.fingerprint not in self._baseline_us:
            # the probe's baseline: a short fixed benchmark on the cool phone, before the sweep
            self._baseline_us[spec.fingerprint] = self._probe_us(spec)

    def _model(self, spec: NetworkSpec) -> str:
        remote = self._models.get(spec.fingerprint)
        if remote is None:
            self._ensure_tools()
            from latency_lab.models.files import tflite_path

            local = tflite_path(spec, self.model_dir, self.builder)
            remote = posixpath.join(self.remote_dir, "models", local.name)
            self.adb.push(local, remote, 0o644, f"model {spec.name}")
            self._models[spec.fingerprint] = remote
        return remote

    def command(self, model: str, resolution: int, runs: int, warmup_runs: int) -> list[str]:
        """argv of one benchmark invocation on the phone (see tflite_bench.benchmark_command)."""
        return tflite_bench.benchmark_command(
            self._remote_binary or "benchmark_model", model, resolution, runs=runs,
            warmup_runs=warmup_runs, threads=self.threads, mask=self.mask,
            input_layer=INPUT_LAYER, xnnpack=self.xnnpack)

    def visit_command(self, model: str, resolution: int, runs: int, warmup_runs: int) -> str:
        """The exact `adb shell` command line of one visit (run script + quoted argv)."""
        if self.per_run:  # one timed run per invocation, each after its own warm-up
            repeat, argv = runs, self.command(model, resolution, 1, max(1, warmup_runs))
        else:
            repeat, argv = 1, self.command(model, resolution, runs, warmup_runs)
        cpus = ",".join(str(c) for c in self.cpus)
        return tflite_bench.shell_command(
            ["sh", "--", self._remote_script or "run_bench.sh", str(repeat), cpus, "--", *argv])

    def _run_visit(self, spec: NetworkSpec, resolution: int, runs: int, warmup_runs: int,
                   per_run: bool | None = None) -> tuple[list[float], bool, dict[str, dict]]:
        model = self._model(spec)
        saved, self.per_run = self.per_run, self.per_run if per_run is None else per_run
        try:
            cmd = self.visit_command(model, resolution, runs, warmup_runs)
            summary_mode = not self.per_run
        finally:
            self.per_run = saved
        output, _ = self.adb.shell(cmd, f"measuring {spec.name} at {resolution}", self.timeout_s)
        invocations = split_invocations(output)
        if not invocations:
            raise DeviceError(f"the run script printed nothing on {self.serial}: "
                              f"{output.strip()[-200:] or 'no output'}")
        samples: list[float] = []
        summary_only = False
        argv = self.command(model, resolution, 1, 1)
        for text, rc in invocations:
            if rc != 0:
                raise DeviceError(_failure_message(rc, text, self._remote_binary))
            try:
                parsed = tflite_bench.parse_benchmark_output(text)
                st = tflite_bench.timed_runs(parsed)
            except tflite_bench.BenchmarkOutputError as exc:
                errors = tflite_bench.error_lines(text)
                if errors:   # TF 1.x exits 0 whatever happened
                    raise DeviceError(f"benchmark_model failed at {resolution} (exit status 0): "
                                      f"{' | '.join(errors[-3:])}") from None
                raise DeviceError(f"unreadable benchmark_model output at {resolution}: {exc}: "
                                  f"{text.strip()[-200:]}") from None
            delegate = tflite_bench.applied(argv, text).delegate
            if st is None:
                samples.append(parsed.inference_avg_us / 1e3)
                summary_only = True
            elif st.is_single_run:
                samples.append(st.curr_us / 1e3)
            else:
                samples.append(st.mean_us / 1e3)
                summary_only = True
        if not summary_mode and len(samples) != runs:
            raise DeviceError(f"benchmark made {len(samples)} of {runs} runs at {resolution}")
        return samples, summary_only, {**parse_probes(output), "applied": {"delegate": delegate}}

    def _probe_us(self, spec: NetworkSpec) -> float:
        res = self._probe_res.get(spec.fingerprint) or self.probe_resolution or 224
        samples, _, _ = self._run_visit(spec, res, 3, 1, per_run=False)
        return samples[0] * 1e3

    def _throttled(self, spec: NetworkSpec, probes: dict[str, dict]) -> str:
        """Why the last visit counts as throttled, or ''."""
        status = probes.get("after", {}).get("thermal_status")
        if status is not None and status.isdigit() and int(status) >= self.throttle_status:
            return f"thermal_status={status}"
        fp = spec.fingerprint
        if fp in self._baseline_us and self.probe_every > 0 and self._calls % self.probe_every == 0:
            probe = self._probe_us(spec)
            if probe > (1 + self.probe_slowdown) * self._baseline_us[fp]:
                return (f"probe {probe:.0f}us > {1 + self.probe_slowdown:.2f} x baseline "
                        f"{self._baseline_us[fp]:.0f}us")
            self._baseline_us[fp] = min(self._baseline_us[fp], probe)
        return ""

    def _cool_down(self, spec: NetworkSpec) -> tuple[float, bool]:
        """Wait until the phone is no longer throttled: (seconds waited, cleared)."""
        waited = 0.0
        while waited < self.max_cooldown_s:
            self._sleep(self.cooldown_s)
            waited += self.cooldown_s
            out, _ = self.adb.shell(tflite_bench.shell_command(
                ["sh", "--", self._remote_script, "0", ""]), "reading the thermal state")
            status = parse_probes(out).get("before", {}).get("thermal_status")
            if status is not None and status.isdigit() and int(status) >= self.throttle_status:
                continue
            fp = spec.fingerprint
            if (fp not in self._baseline_us
                    or self._probe_us(spec) <= (1 + self.probe_slowdown) * self._baseline_us[fp]):
                return waited, True
        return waited, False

    def sample(self, spec: NetworkSpec, resolution: int, runs: int,
               warmup_runs: int = 1) -> RunResult:
        self._calls += 1
        samples, summary_only, probes = self._run_visit(spec, resolution, runs, warmup_runs)
        facts: dict[str, Any] = _facts(probes)
        key = (spec.fingerprint, resolution)
        reason = self._throttled(spec, probes) if self.throttle_check else ""
        if reason:
            waited, cleared = self._cool_down(spec)
            samples, summary_only, probes = self._run_visit(spec, resolution, runs, warmup_runs)
            t = self._throttle.setdefault(key, {"throttle_events": 0, "cooldown_s": 0.0})
            t["throttle_events"] += 1
            t["cooldown_s"] += waited
            facts.update(_facts(probes))
            facts.update(t, throttle_reason=reason, throttle_cleared=cleared, remeasured=True)
        elif key in self._throttle:
            facts.update(self._throttle[key])
        return RunResult(samples_ms=tuple(samples), facts=facts, summary_only=summary_only)

    def close(self) -> None:
        """Remove the pushed models and run script (the binary stays, named by its hash)."""
        paths = list(self._models.values()) + ([self._remote_script] if self._remote_script else [])
        self._models.clear()
        if paths and self.adb is not None:
            try:
                self.adb.shell(f"rm -f -- {tflite_bench.shell_command(paths)}",
                               "removing pushed files")
            except DeviceError:
                pass  # the phone is gone; nothing to clean
        self._remote_script = self._remote_binary = ""


class Pixel2Device(AndroidDevice):
    """Google Pixel 2: one thread on the big cores (taskset f0), as in the thesis."""

    name = "pixel2"
    profile_name = "pixel2"
