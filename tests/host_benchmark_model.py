"""A host stand-in for the TFLite `benchmark_model` binary, for the simulated phone in tests.

Takes the binary's flags (`--graph`, `--num_threads`, `--warmup_runs`, `--warmup_min_secs`,
`--num_runs`, `--min_secs`, `--max_secs`, `--input_layer`, `--input_layer_shape`,
`--use_xnnpack`; unknown flags are an error as in the real tool), runs the model with the real
LiteRT interpreter and prints what the binary prints (benchmark_model.cc /
benchmark_tflite_model.cc, TFLITE_LOG to stderr with an `INFO: ` prefix): the parameter log,
one `count=... first=... curr=... min=... max=... avg=... std=...` line per Run() (warm-up,
then timed runs; `count=N curr=T(all same)` and `count=1 curr=T` forms included) and the
`Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...`
summary. Times are real LiteRT timings in microseconds.

Test hooks: the file `$FAKE_DEVICE_ROOT/crash` makes it abort (SIGABRT) after loading the
model, like a delegate crash on a phone. The tests install it with the running Python as its
interpreter (shebang).
"""

from __future__ import annotations

import math
import os
import sys
import time

FLAGS = {  # name -> default, as in BenchmarkModel::DefaultParams / BenchmarkTfLiteModel
    "graph": "", "num_threads": "-1", "warmup_runs": "1", "warmup_min_secs": "0.5",
    "num_runs": "50", "min_secs": "1.0", "max_secs": "150.0", "input_layer": "",
    "input_layer_shape": "", "use_xnnpack": "false", "run_delay": "-1.0",
    "report_peak_memory_footprint": "false", "verbose": "false",
}


def log(msg: str) -> None:
    sys.stderr.write(f"INFO: {msg}\n")


def stat_line(values: list[int]) -> str:
    """tsl::Stat<int64_t>::OutputToStream."""
    if not values:
        return "count=0"
    n = len(values)
    if min(values) == max(values):
        return f"count={n} curr={values[-1]}" + ("(all same)" if n > 1 else "")
    avg = sum(values) / n
    std = int(math.sqrt(max(0.0, sum(v * v for v in values) / n - avg * avg)))
    return (f"count={n} first={values[0]} curr={values[-1]} min={min(values)} "
            f"max={max(values)} avg={avg:.6g} std={std}")


def run(invoke, min_runs: int, min_secs: float, max_secs: float) -> list[int]:
    log(f"Running benchmark for at least {min_runs} iterations and at least {min_secs:g} "
        f"seconds but terminate if exceeding {max_secs:g} seconds.")
    times: list[int] = []
    start = time.perf_counter()
    now = start
    while (len(times) < min_runs or now - start < min_secs) and now - start <= max_secs:
        t0 = time.perf_counter_ns()
        invoke()
        times.append((time.perf_counter_ns() - t0) // 1000)
        now = time.perf_counter()
    log(stat_line(times) + "\n")
    return times


def main(argv: list[str]) -> int:
    params = dict(FLAGS)
    for arg in argv:
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or not eq or name not in FLAGS:
            log(f"Unconsumed cmdline flags: {arg}")
            return 1
        params[name] = value
    log("STARTING!")
    log("Log parameter values verbosely: [0]")
    log(f"Min num runs: [{params['num_runs']}]")
    log(f"Num threads: [{params['num_threads']}]")
    log(f"Graph: [{params['graph']}]")
    if not params["graph"]:
        sys.stderr.write("ERROR: Please specify the name of your TF Lite input file with --graph\n")
        return 1
    if not os.path.isfile(params["graph"]):
        sys.stderr.write(f"ERROR: Could not open '{params['graph']}'.\n")
        log("Failed to mmap model " + params["graph"])
        return 1
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    t0 = time.perf_counter_ns()
    xnnpack = params["use_xnnpack"] in ("true", "1")
    interp = Interpreter(model_path=params["graph"], num_threads=max(1, int(params["num_threads"])),
                         experimental_op_resolver_type=OpResolverType.AUTO if xnnpack
                         else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if params["input_layer_shape"]:
        shape = [int(d) for d in params["input_layer_shape"].split(",")]
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], shape, strict=True)
    interp.allocate_tensors()
    init_us = (time.perf_counter_ns() - t0) // 1000
    log(f"Loaded model {params['graph']}")
    log(f"The input model file size (MB): {os.path.getsize(params['graph']) / 1e6:g}")
    log(f"Initialized session in {init_us / 1e3:g}ms.")
    root = os.environ.get("FAKE_DEVICE_ROOT", "")
    if root and os.path.exists(os.path.join(root, "crash")):
        sys.stderr.write("F tensorflow/lite/kernels/conv.cc:350] Check failed: ok\n")
        sys.stderr.flush()
        os.abort()
    import numpy as np

    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], np.random.default_rng(0).uniform(
        -0.5, 0.5, detail["shape"]).astype(np.float32))
    max_secs = float(params["max_secs"])
    warm = run(interp.invoke, int(params["warmup_runs"]), float(params["warmup_min_secs"]), max_secs)
    timed = run(interp.invoke, int(params["num_runs"]), float(params["min_secs"]), max_secs)
    warm_avg = sum(warm) / len(warm) if warm else float("nan")
    inf_avg = sum(timed) / len(timed) if timed else float("nan")
    log(f"Inference timings in us: Init: {init_us}, First inference: {warm[0] if warm else 0}, "
        f"Warmup (avg): {warm_avg:.6g}, Inference (avg): {inf_avg:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
