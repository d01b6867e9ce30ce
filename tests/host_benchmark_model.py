"""A host stand-in for LiteRT's (TFLite's) `benchmark_model` binary, for the simulated phone.

It runs the model with the real LiteRT interpreter (ai_edge_litert: real timings, the real
XNNPACK delegate) and behaves as one of three builds of the binary behaves, read from their
sources. `BUILD` below names the build; the tests install one file per build (each with its own
hash, as a phone carries one binary) by rewriting that line.

current -- LiteRT, google-ai-edge/LiteRT@f67457790 (2026-08-21): tflite/tools/benchmark/
    benchmark_main.cc, benchmark_model.cc, benchmark_tflite_model.cc, tflite/tools/logging.h,
    tflite/tools/command_line_flags.cc, tflite/tools/delegates/xnnpack_delegate_provider.cc,
    and StatWithPercentiles (tsl stats_calculator.h):
  * INFO:/WARN: lines on stdout, ERROR:/FATAL: lines on stderr (LoggingWrapper);
  * a flag it does not know: `WARN: Unconsumed cmdline flags: ...`, and it goes on
    (BenchmarkModel::ParseFlags); a bad value: ERROR lines, exit 1;
  * a parameter line only for the flags given (LOG_BENCHMARK_PARAM/LOG_TOOL_PARAM with
    verbose=false): `Min num runs: [1]`, `Use xnnpack: [1]`; `Graph` and `Signature to run`
    always;
  * Init(): the name check (a WARN), the resize, then the delegates: `Explicitly applied
    XNNPACK delegate, and the model graph will be completely executed by the delegate.` (or
    `partially ... w/ N delegate kernels`, or `Though XNNPACK delegate is explicitly
    applied, ...`); `Going to apply N delegates one after another.` only for N >= 2;
    --use_xnnpack given (true or false) drops the runtime's default delegate (GetOpResolver);
  * each Run()'s statistics with ` p5=.. median=.. p95=..`, the warm-up's too;
  * failure: `ERROR: Benchmarking failed.` and exit 1 (benchmark_main.cc).
mid -- TensorFlow 2.x, tensorflow/tensorflow: tensorflow/lite/tools/benchmark/
    benchmark_model.cc@08df8c40, benchmark_tflite_model.cc@010f3edc, benchmark_main.cc@00f0938a,
    tensorflow/lite/tools/logging.h@202a7abd, delegates/xnnpack_delegate_provider.cc@00ad2689:
  * logging, flags, parameter lines and failures as current;
  * Init() applies the delegates first (`Going to apply N delegates one after another.`,
    always), then checks the names and resizes: XNNPACK sees the model's stored shape;
  * only --use_xnnpack=false drops the runtime's default delegate;
  * statistics without percentiles (Stat<int64_t>).
tf1 -- TensorFlow 1.x, the Pixel 2 era (2018), tensorflow/tensorflow tensorflow/contrib/lite/
    tools/benchmark/: benchmark_main.cc@a8722694, benchmark_model.cc@03a47f81,
    benchmark_tflite_model.cc@1ecd395c, command_line_flags.cc@6a3cd267, logging.h@a41a2d06:
  * every line on stderr, no prefix;
  * a flag it does not know is left over and nobody says so (Flags::Parse): --use_xnnpack,
    --min_secs, --warmup_min_secs do nothing; no XNNPACK exists;
  * fixed parameter lines (LogFlags): Num runs, Inter-run delay (seconds), Num threads,
    Benchmark name, Output prefix, Warmup runs, Graph, Input layers, Input shapes, Use nnapi;
  * exactly --warmup_runs and --num_runs runs (`Running benchmark for N iterations `);
  * an input named otherwise aborts (TFLITE_BENCHMARK_CHECK_EQ: SIGABRT), so does a model
    that does not load or run (TFLITE_LOG(FATAL)); a missing --graph or a bad flag value
    returns exit status 0 (Main returns 0 whatever happened);
  * `Average inference timings in us: Warmup: W, Init: I, no stats: A`.

What it cannot show: the fake's XNNPACK is today's, which re-prepares after a resize; whether
a 2021 build's XNNPACK on a phone does after mid's delegate-then-resize order is not shown.
Test hook: the file `$FAKE_DEVICE_ROOT/crash` makes it abort (SIGABRT) after loading the model,
like a delegate crash on a phone. The tests install it with the running Python as interpreter.
"""

from __future__ import annotations

import math
import os
import sys
import time

BUILD = "current"

FLAGS = {  # flag -> (default, the description its parameter line logs), current and mid
    "num_runs": ("50", "Min num runs"), "min_secs": ("1.0", "Min runs duration (seconds)"),
    "max_secs": ("150.0", "Max runs duration (seconds)"),
    "run_delay": ("-1.0", "Inter-run delay (seconds)"), "num_threads": ("-1", "Num threads"),
    "warmup_runs": ("1", "Min warmup runs"),
    "warmup_min_secs": ("0.5", "Min warmup runs duration (seconds)"),
    "verbose": ("false", "Verbose"), "graph": ("", "Graph"),
    "input_layer": ("", "Input layers"), "input_layer_shape": ("", "Input shapes"),
    "use_xnnpack": ("false", "Use xnnpack"),
}
TF1_FLAGS = {  # BenchmarkModel::DefaultParams + BenchmarkTfLiteModel's, and LogFlags' order
    "num_runs": ("50", "Num runs"), "run_delay": ("-1", "Inter-run delay (seconds)"),
    "num_threads": ("1", "Num threads"), "benchmark_name": ("", "Benchmark name"),
    "output_prefix": ("", "Output prefix"), "warmup_runs": ("1", "Warmup runs"),
    "graph": ("", "Graph"), "input_layer": ("", "Input layers"),
    "input_layer_shape": ("", "Input shapes"), "use_nnapi": ("false", "Use nnapi ")}
BOOLS = ("verbose", "use_xnnpack", "use_nnapi")


class Fatal(Exception):
    """TFLITE_LOG(FATAL) / a failed TFLITE_*_CHECK: the message, then abort()."""


def log(severity: str, msg: str) -> None:
    if BUILD == "tf1":      # contrib logging.h: std::cerr << message, whatever the severity
        sys.stderr.write(msg + "\n")
    elif severity in ("INFO", "WARN"):
        sys.stdout.write(f"{severity}: {msg}\n")
    else:
        sys.stderr.write(f"{severity}: {msg}\n")
    sys.stdout.flush()
    sys.stderr.flush()


def fmt(value: float) -> str:
    """A double through std::ostream (6 significant digits)."""
    return f"{value:.6g}"


def stat_line(values: list[int]) -> str:
    """Stat<int64_t>::OutputToStream, and StatWithPercentiles' percentiles in `current`."""
    if not values:
        return "count=0"
    n = len(values)
    if min(values) == max(values):
        text = f"count={n} curr={values[-1]}" + ("(all same)" if n > 1 else "")
    else:
        avg = sum(values) / n
        std = int(math.sqrt(max(0.0, sum(v * v for v in values) / n - avg * avg)))
        text = (f"count={n} first={values[0]} curr={values[-1]} min={min(values)} "
                f"max={max(values)} avg={fmt(avg)} std={std}")
    if BUILD == "current":   # percentile(p): nth_element at size * p / 100
        ordered = sorted(values)
        text += " " + " ".join(f"{k}={ordered[n * p // 100]}"
                               for k, p in (("p5", 5), ("median", 50), ("p95", 95)))
    return text


def run(invoke, min_runs: int, min_secs: float, max_secs: float) -> list[int]:
    if BUILD == "tf1":
        log("INFO", f"Running benchmark for {min_runs} iterations ")
    else:
        log("INFO", f"Running benchmark for at least {min_runs} iterations and at least "
                    f"{fmt(min_secs)} seconds but terminate if exceeding {fmt(max_secs)} seconds.")
    times: list[int] = []
    start = time.perf_counter()
    now = start
    while (len(times) < min_runs or (BUILD != "tf1" and now - start < min_secs)) and (
            BUILD == "tf1" or now - start <= max_secs):
        t0 = time.perf_counter_ns()
        invoke()
        times.append((time.perf_counter_ns() - t0) // 1000)
        now = time.perf_counter()
    log("INFO", stat_line(times) + "\n")
    return times


def parse_flags(argv: list[str]) -> tuple[dict, set, list[str], bool]:
    """(params, the flags given, the arguments left over, whether every value parsed)."""
    known = TF1_FLAGS if BUILD == "tf1" else FLAGS
    params = {k: v for k, (v, _) in known.items()}
    given: set[str] = set()
    left: list[str] = []
    ok = True
    for arg in argv:
        name, eq, value = arg[2:].partition("=")
        if not arg.startswith("--") or not eq or name not in known:
            left.append(arg)
            continue
        if name in given:        # the first one counts (a duplicate is only logged in debug)
            continue
        if name in BOOLS:
            allowed = ("true", "false") if BUILD == "tf1" else ("true", "false", "1", "0")
            if value not in allowed:
                if BUILD != "tf1":
                    log("ERROR", f"Failed to parse flag '{name}' against argv '{arg}'")
                ok = False
                continue
            value = "true" if value in ("true", "1") else "false"
        given.add(name)
        params[name] = value
    return params, given, left, ok


def log_params(params: dict, given: set) -> None:
    if BUILD == "tf1":   # LogFlags + BenchmarkTfLiteModel::LogFlags: all of them, always
        for name, (_, description) in TF1_FLAGS.items():
            value = params[name]
            value = {"true": "1", "false": "0"}.get(value, value) if name in BOOLS else value
            log("INFO", f"{description}: [{value}]")
        return
    log("INFO", "Log parameter values verbosely: [0]")
    for name, (_, description) in FLAGS.items():
        if name in given or name == "graph":
            value = params[name]
            if name in BOOLS:
                value = "1" if value == "true" else "0"
            elif name in ("min_secs", "max_secs", "run_delay", "warmup_min_secs"):
                value = fmt(float(value))
            log("INFO", f"{description}: [{value}]")
        if name == "graph" and BUILD == "current":
            log("INFO", "Signature to run: []")


def delegated(interp) -> tuple[int, bool]:
    """(delegate kernels, whether they run the whole graph) as Init() counts them."""
    ops = interp._get_ops_details()
    kernels = [o for o in ops if o["op_name"] == "DELEGATE"]
    outputs = {d["index"] for d in interp.get_output_details()}
    whole = len(kernels) == 1 and outputs <= set(int(i) for i in kernels[0]["outputs"])
    return len(kernels), whole


def apply_delegates(interp, explicit: bool) -> None:
    """AllocateTensors applies the runtime's delegate (host LiteRT: XNNPACK); say what the
    binary says of an explicitly applied one."""
    interp.allocate_tensors()
    if not explicit:
        return
    n, whole = delegated(interp)
    if whole:
        log("INFO", "Explicitly applied XNNPACK delegate, and the model graph will be "
                    "completely executed by the delegate.")
    elif n:
        log("INFO", f"Explicitly applied XNNPACK delegate, and the model graph will be "
                    f"partially executed by the delegate w/ {n} delegate kernels.")
    else:
        log("INFO", "Though XNNPACK delegate is explicitly applied, the model graph will not "
                    "be executed by the delegate.")


def init(params: dict, given: set):
    """BenchmarkTfLiteModel::Init: the interpreter, resized and delegated, in the build's order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    graph = params["graph"]
    if not os.path.isfile(graph):
        if BUILD == "tf1":
            raise Fatal(f"Failed to mmap model {graph}")
        log("ERROR", f"Failed to mmap model {graph}" if BUILD == "mid" else
            f"Failed to load model {graph}")
        return None
    xnnpack = params.get("use_xnnpack") == "true"
    if BUILD == "tf1":
        default_delegates = False               # no XNNPACK in TF 1.x
    elif BUILD == "mid":
        default_delegates = not ("use_xnnpack" in given and not xnnpack)
    else:
        default_delegates = "use_xnnpack" not in given or xnnpack
    threads = int(params["num_threads"])
    interp = Interpreter(model_path=graph, num_threads=threads if threads > 0 else None,
                         experimental_op_resolver_type=OpResolverType.AUTO if default_delegates
                         else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    log("INFO", f"Loaded model {graph}")
    if BUILD == "tf1":
        log("INFO", "resolved reporter")
    if BUILD == "mid":   # the delegates first, at the model's stored shape
        log("INFO", f"Going to apply {int(xnnpack)} delegates one after another.")
        apply_delegates(interp, xnnpack)
    names = [n for n in params["input_layer"].split(",") if n]
    shapes = [[int(d) for d in s.split(",")] for s in params["input_layer_shape"].split(":") if s]
    if len(names) != len(shapes):
        log("ERROR", "The number of items in --input_layer_shape must match the number of items "
                     "in --input_layer")
        return None
    inputs = interp.get_input_details()
    for name, detail in zip(names, inputs):
        if name != detail["name"]:
            message = (f"Tensor # {detail['index']} is named {detail['name']} but flags call "
                       f"it {name}")
            if BUILD == "tf1":
                raise Fatal(message)
            log("WARN", message)
    for shape, detail in zip(shapes, inputs):
        interp.resize_tensor_input(detail["index"], shape, strict=True)
    if BUILD == "current":
        apply_delegates(interp, xnnpack)
    interp.allocate_tensors()
    return interp


def main(argv: list[str]) -> int:
    log("INFO", "STARTING!")
    params, given, left, ok = parse_flags(argv)
    if not ok:
        if BUILD == "tf1":   # ParseFlags fails: the usage, and Run() returns: exit status 0
            log("ERROR", f"usage: {sys.argv[0]}")
            return 0
        log("ERROR", f"usage: {sys.argv[0]}")
        log("ERROR", "Benchmarking failed.")
        return 1
    if left and BUILD != "tf1":
        log("WARN", "Unconsumed cmdline flags: " + " ".join(left))
    if not params["graph"]:
        log("ERROR", "Please specify the name of your TF Lite input file with --graph")
        if BUILD == "tf1":
            return 0
        log("ERROR", "Benchmarking failed.")
        return 1
    log_params(params, given)
    t0 = time.perf_counter_ns()
    interp = init(params, given)
    if interp is None:
        log("ERROR", "Benchmarking failed.")
        return 1
    init_us = (time.perf_counter_ns() - t0) // 1000
    root = os.environ.get("FAKE_DEVICE_ROOT", "")
    if root and os.path.exists(os.path.join(root, "crash")):
        raise Fatal("tensorflow/lite/kernels/conv.cc:350 Check failed: ok")
    if BUILD == "tf1":
        log("INFO", f"Initialized session in {fmt(init_us / 1e3)}ms")
    else:
        log("INFO", f"The input model file size (MB): {fmt(os.path.getsize(params['graph']) / 1e6)}")
        log("INFO", f"Initialized session in {fmt(init_us / 1e3)}ms.")
    import numpy as np

    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], np.random.default_rng(0).uniform(
            -0.5, 0.5, detail["shape"]).astype(np.float32))
    max_secs = float(params.get("max_secs", "150"))
    warm = run(interp.invoke, int(params["warmup_runs"]),
               float(params.get("warmup_min_secs", "0")), max_secs)
    timed = run(interp.invoke, int(params["num_runs"]), float(params.get("min_secs", "0")),
                max_secs)
    warm_avg = sum(warm) / len(warm) if warm else float("nan")
    inf_avg = sum(timed) / len(timed) if timed else float("nan")
    if BUILD == "tf1":
        log("INFO", f"Average inference timings in us: Warmup: {fmt(warm_avg)}, Init: {init_us}, "
                    f"no stats: {fmt(inf_avg)}")
        return 0
    log("INFO", f"Inference timings in us: Init: {init_us}, First inference: "
                f"{warm[0] if warm else 0}, Warmup (avg): {fmt(warm_avg)}, Inference (avg): "
                f"{fmt(inf_avg)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Fatal as exc:
        log("FATAL", str(exc))
        os.abort()
