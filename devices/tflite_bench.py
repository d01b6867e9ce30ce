"""The TFLite / LiteRT `benchmark_model` binary: its command line and its output, as pure code.

No device and no I/O here: `benchmark_command` builds the argument list the phone runs
(flags as defined in tensorflow/lite/tools/benchmark/benchmark_model.cc and
benchmark_tflite_model.cc), `shell_command` quotes it for `adb shell`, and
`parse_benchmark_output` reads every output format the binary has printed over the years:

* the statistics line of each `BenchmarkModel::Run` call (tsl/tensorflow `Stat::OutputToStream`
  in stats_calculator.h)::

      count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896
      count=5 curr=5203(all same)
      count=1 curr=146161
      count=50 first=... std=896 p5=137100 median=137500 p95=139000   (StatWithPercentiles)

  the first such line of a run is the warm-up, the last one the timed runs; the op-profiling
  summary's `Timings (microseconds): count=...` and `Memory (bytes): count=...` are not;
* the summary line, current (`BenchmarkLoggingListener::OnBenchmarkEnd`)::

      Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): 14575.2

  and older (TF 1.x / 2.0-2.2)::

      Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1
      Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722

Lines may carry a log prefix (`INFO: `, `I tensorflow/...cc:324] `); all times are in us.

Per-run samples: the binary has no flag that writes every run's time, so the driver asks for
them the one way the stock binary allows: one timed run per invocation (`--num_runs=1
--min_secs=0`, after the warm-up runs in that process); each invocation's timed-run line is
`count=1 curr=T`, a real single sample. A `count=N` line with N > 1 only gives a summary.

What the binary applied (`applied`): builds differ in what they do with a flag they do not
know. Current LiteRT and TF 2.x builds say `WARN: Unconsumed cmdline flags: ...` and go on
(BenchmarkModel::ParseFlags in tflite/tools/benchmark/benchmark_model.cc, LiteRT@f6745779);
TF 1.x builds (tensorflow/contrib/lite/tools/benchmark/command_line_flags.cc@6a3cd267) leave
it over and say nothing, so `--use_xnnpack=true` ran without XNNPACK. Every build logs one
parameter line per flag it consumed (LOG_BENCHMARK_PARAM/LOG_TOOL_PARAM: `Use xnnpack: [1]`;
TF 1.x's LogFlags: a fixed list), and the delegate it applied (`Explicitly applied XNNPACK
delegate, and the model graph will be completely executed by the delegate.`, Init() in
benchmark_tflite_model.cc). So a flag with neither a parameter line nor a place in the
unconsumed list was not applied, and the delegate is the one the log names.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Sequence

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|-?inf"
_KV = re.compile(rf"\b(count|first|curr|min|max|avg|std|p5|median|p95)=({_NUM})")
_CURRENT = re.compile(
    rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
    rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_LEGACY = re.compile(r"Average inference timings in us: (.*)$")
_LEGACY_FIELD = re.compile(rf"(Warmup|Init|Inference|no stats|with stats): ({_NUM})")
_NOT_RUN_STATS = ("Timings (microseconds)", "Memory (bytes)")


class BenchmarkOutputError(ValueError):
    """Output that holds no timing of the timed runs."""


@dataclass(frozen=True)
class StatLine:
    """One `Stat<int64_t>` as printed by the binary, in microseconds."""

    count: int
    curr_us: float
    first_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None
    all_same: bool = False

    @property
    def mean_us(self) -> float:
        """The average; for `(all same)` and `count=1` lines, every run took `curr`."""
        return self.avg_us if self.avg_us is not None else self.curr_us

    @property
    def is_single_run(self) -> bool:
        return self.count == 1


@dataclass(frozen=True)
class BenchmarkOutput:
    stats: tuple[StatLine, ...]          # every Run() statistics line, in order
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    summary_format: str = ""             # "current", "legacy" or "" (no summary line)


def parse_stat_line(line: str) -> StatLine | None:
    """The statistics of one `Stat::OutputToStream` line, or None when `line` is not one."""
    if "count=" not in line or any(tag in line for tag in _NOT_RUN_STATS):
        return None
    values = {k: float(v) for k, v in _KV.findall(line)}
    if "count" not in values:
        return None
    count = int(values["count"])
    if count == 0:
        return StatLine(count=0, curr_us=float("nan"))
    if "curr" not in values:
        return None
    return StatLine(count=count, curr_us=values["curr"], first_us=values.get("first"),
                    min_us=values.get("min"), max_us=values.get("max"), avg_us=values.get("avg"),
                    std_us=values.get("std"), p5_us=values.get("p5"),
                    median_us=values.get("median"), p95_us=values.get("p95"),
                    all_same="(all same)" in line)


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Everything timing-related in one invocation's output (stdout and stderr together)."""
    stats: list[StatLine] = []
    summary: dict = {}
    for line in text.splitlines():
        m = _CURRENT.search(line)
        if m:
            init, first, warm, inf = (float(g) for g in m.groups())
            summary = dict(init_us=init, first_inference_us=first, warmup_avg_us=warm,
                           inference_avg_us=inf, summary_format="current")
            continue
        m = _LEGACY.search(line)
        if m:
            fields = {k: float(v) for k, v in _LEGACY_FIELD.findall(m.group(1))}
            inference = fields.get("Inference", fields.get("no stats"))
            summary = dict(init_us=fields.get("Init"), warmup_avg_us=fields.get("Warmup"),
                           inference_avg_us=inference, summary_format="legacy")
            continue
        st = parse_stat_line(line)
        if st is not None:
            stats.append(st)
    return BenchmarkOutput(stats=tuple(stats), **summary)


def timed_runs(out: BenchmarkOutput) -> StatLine | None:
    """The statistics of the timed runs; None when only the summary's average is known
    (logcat of the benchmark app keeps only that line); BenchmarkOutputError when neither.

    The binary prints one statistics line per Run() call: warm-up first, timed runs second.
    With a single line and no summary we cannot tell which it was and refuse.
    """
    if len(out.stats) >= 2:
        st = out.stats[-1]
    elif len(out.stats) == 1 and out.summary_format:
        st = out.stats[0]  # warm-up line missing (e.g. --warmup_runs=0 with old builds)
        if out.inference_avg_us is not None and abs(st.mean_us - out.inference_avg_us) > max(
                1.0, 1e-3 * out.inference_avg_us):
            raise BenchmarkOutputError("the only statistics line is not the timed runs")
    elif out.inference_avg_us is not None:
        return None
    else:
        raise BenchmarkOutputError("no timing of the timed runs in the benchmark output")
    if st.count < 1:
        raise BenchmarkOutputError("the benchmark made no timed run (count=0)")
    return st


# -- the command line ---------------------------------------------------------------------------

def benchmark_command(binary: str, model: str, resolution: int, *, runs: int, warmup_runs: int,
                      threads: int = 1, mask: str = "", input_layer: str = "",
                      xnnpack: bool = True, batch_size: int = 1,
                      extra_flags: Sequence[str] = ()) -> list[str]:
    """argv of one benchmark_model invocation: `runs` timed runs at `resolution`.

    `--min_secs=0` and `--warmup_min_secs=0` make the counts exact (defaults 1 s and 0.5 s
    would add runs); `--input_layer_shape` resizes the dynamic-shape model (NHWC).
    """
    if runs < 1 or warmup_runs < 0 or threads < 1:
        raise ValueError("need runs >= 1, warmup_runs >= 0, threads >= 1")
    argv = ["taskset", mask] if mask else []
    argv += [binary, f"--graph={model}", f"--num_threads={threads}",
             f"--warmup_runs={warmup_runs}", "--warmup_min_secs=0",
             f"--num_runs={runs}", "--min_secs=0",
             f"--use_xnnpack={'true' if xnnpack else 'false'}"]
    if input_layer:
        argv += [f"--input_layer={input_layer}",
                 f"--input_layer_shape={batch_size},{resolution},{resolution},3"]
    argv += list(extra_flags)
    return argv


# -- what the binary says it applied ------------------------------------------------------------

# The parameter line a consumed flag logs (description: [value]): LOG_BENCHMARK_PARAM /
# LOG_TOOL_PARAM in benchmark_model.cc, benchmark_tflite_model.cc and
# delegates/xnnpack_delegate_provider.cc (LiteRT@f6745779; tensorflow@08df8c40, @010f3edc,
# @00ad2689), and TF 1.x's LogFlags (contrib benchmark_model.cc@03a47f81: "Num runs",
# "Warmup runs"; TF 2.3 logs "Use xnnpack : [0]", a space before the colon).
PARAM_DESCRIPTIONS = {
    "graph": ("Graph",), "num_threads": ("Num threads",),
    "num_runs": ("Min num runs", "Num runs"), "warmup_runs": ("Min warmup runs", "Warmup runs"),
    "min_secs": ("Min runs duration (seconds)",),
    "warmup_min_secs": ("Min warmup runs duration (seconds)",),
    "input_layer": ("Input layers",), "input_layer_shape": ("Input shapes",),
    "use_xnnpack": ("Use xnnpack",),
}
_PARAM_LINE = re.compile(r"^(?:(?:INFO|WARN): )?([A-Za-z#][^:\[\]]*?)\s*: \[(.*)\]\s*$")
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(.*?)\s*$")
# Init() in benchmark_tflite_model.cc (LiteRT@f6745779, tensorflow@010f3edc); TF 2.2-2.3
# printed "Applied X delegate, and the model graph will be completely executed w/ the delegate."
_APPLIED = re.compile(r"(?:Explicitly a|A)pplied (\S+) delegate, and the model graph will be "
                      r"(completely|partially) executed(?: by| w/)(?: the delegate)?"
                      r"(?: w/ (\d+) delegate kernels)?")
_NOT_EXECUTED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will "
                           r"not be executed")
_FAILED = re.compile(r"Failed to apply (\S+) delegate")
# the runtime's own default delegate (tflite/delegates/xnnpack/xnnpack_delegate.cc@f6745779)
_XNNPACK_CREATED = "Created TensorFlow Lite XNNPACK delegate for CPU."
# what TF 1.x prints when it fails, without a severity prefix and with exit status 0 (its
# Main returns 0 whatever happened: contrib benchmark_main.cc@a8722694)
_TF1_ERRORS = ("Please specify the name of your TF Lite input file", "Failed to mmap model",
               "Failed to construct interpreter", "Failed to allocate tensors",
               "Failed to invoke", "but flags call it", "usage: ")


@dataclass(frozen=True)
class Applied:
    """What one benchmark_model invocation says it did with the flags it was given."""

    delegate: str                 # "xnnpack", "xnnpack partial (N kernels)", "none", "unknown"
    asked: str                    # "xnnpack" or "none": what --use_xnnpack asked for
    ignored: tuple[str, ...] = ()  # arguments it did not consume (unconsumed, or no param line)

    @property
    def differs(self) -> bool:
        return self.delegate.split(" ")[0] != self.asked

    def note(self) -> str:
        """One sentence on how this differs from what was asked, or ''."""
        parts = []
        if self.ignored:
            parts.append(f"ignored {' '.join(self.ignored)}")
        if self.differs:
            parts.append(f"ran with delegate {self.delegate} where {self.asked} was asked")
        return "benchmark_model " + " and ".join(parts) if parts else ""


def applied(argv: Sequence[str], text: str) -> Applied:
    """Read the binary's own report (`text`, stdout and stderr) of what it applied of `argv`.

    A flag counts as ignored when the binary lists it as unconsumed, or when it has a known
    parameter line (PARAM_DESCRIPTIONS: every flag the driver passes) and none was logged;
    another flag a TF 1.x build ignores leaves no trace to read."""
    params: dict[str, str] = {}
    unconsumed: list[str] = []
    delegate = ""
    for line in text.splitlines():
        m = _UNCONSUMED.search(line)
        if m:
            unconsumed += m.group(1).split()
            continue
        m = _PARAM_LINE.match(line.strip())
        if m:
            params.setdefault(m.group(1).strip(), m.group(2))
        m = _APPLIED.search(line)
        if m and m.group(1).upper() == "XNNPACK":
            kernels = m.group(3)
            delegate = ("xnnpack" if m.group(2) == "completely" else
                        f"xnnpack partial ({kernels or '?'} kernels)")
        elif _NOT_EXECUTED.search(line) or (_FAILED.search(line) and "XNNPACK" in line):
            delegate = delegate or "none"
    flags = [a for a in argv if a.startswith("--")]
    ignored = []
    for arg in flags:
        descriptions = PARAM_DESCRIPTIONS.get(arg[2:].partition("=")[0])
        if arg in unconsumed or (descriptions and not any(d in params for d in descriptions)):
            ignored.append(arg)
    asked = "xnnpack" if "--use_xnnpack=true" in flags else "none"
    if not delegate:
        if _XNNPACK_CREATED in text:
            delegate = "xnnpack (runtime default)"
        elif params.get("Use xnnpack") in ("1", "true"):
            delegate = "unknown"    # consumed, and nothing said of it
        else:
            delegate = "none"
    return Applied(delegate=delegate, asked=asked, ignored=tuple(ignored))


def error_lines(text: str) -> list[str]:
    """The lines of one invocation's output that report a failure: ERROR:/FATAL: lines, and
    TF 1.x's unprefixed ones."""
    return [line.strip() for line in text.splitlines()
            if line.startswith(("ERROR: ", "FATAL: ")) or any(e in line for e in _TF1_ERRORS)]


def shell_command(argv: Sequence[str]) -> str:
    """One shell command line with every argument quoted (no word splitting, no `;`)."""
    return shlex.join(str(a) for a in argv)
