"""benchmark_model output parsing (every format the binary has printed) and its command line."""

from __future__ import annotations

import math
import shlex
import subprocess

import pytest

from latency_lab.devices.tflite_bench import (Applied, BenchmarkOutputError, applied, benchmark_command,
                                              error_lines, parse_benchmark_output, parse_stat_line,
                                              shell_command, timed_runs)

# The binary's output around 2023-2025 (LiteRT/TF 2.1x): TFLITE_LOG lines with "INFO: ".
CURRENT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/m.tflite]
INFO: Loaded model /data/local/tmp/m.tflite
INFO: The input model file size (MB): 21.2
INFO: Initialized session in 5.685ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=35 first=18535 curr=14300 min=14166 max=18535 avg=14462.3 std=702

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=69 first=14488 curr=14533 min=14250 max=15627 avg=14575.2 std=231 p5=14299 median=14544 p95=15010

INFO: Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): 14575.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.2 overall=9.1
"""

# TF 2.0-2.2: no log prefix, "Average inference timings", op-profiling summary after it.
LEGACY = """\
Initialized session in 38.467ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds
count=6 first=91810 curr=85097 min=84834 max=91810 avg=86184.3 std=2519

Running benchmark for at least 50 iterations and at least 1 seconds
count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929

Timings (microseconds): count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929
Memory (bytes): count=0
31 nodes observed

Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
"""

# TF 1.x: "no stats" in place of "Inference", glog prefix.
OLDEST = """\
2019-01-11 08:56:45.691915: I tensorflow/lite/tools/benchmark/benchmark_model.cc:324] count=1 curr=146161
2019-01-11 08:56:45.691915: I tensorflow/lite/tools/benchmark/benchmark_model.cc:324] count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896
Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
"""


def test_current_format_with_percentiles():
    out = parse_benchmark_output(CURRENT)
    assert out.summary_format == "current"
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        5685, 18535, 14462.3, 14575.2)
    warm, timed = out.stats
    assert warm.count == 35 and warm.first_us == 18535 and warm.p5_us is None
    st = timed_runs(out)
    assert st is timed
    assert (st.count, st.first_us, st.curr_us, st.min_us, st.max_us) == (69, 14488, 14533, 14250, 15627)
    assert (st.avg_us, st.std_us, st.p5_us, st.median_us, st.p95_us) == (14575.2, 231, 14299, 14544, 15010)
    assert not st.all_same and not st.is_single_run


def test_legacy_format_ignores_the_op_profiling_summary():
    out = parse_benchmark_output(LEGACY)
    assert out.summary_format == "legacy"
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (83235, 38467, 79760.9)
    assert out.first_inference_us is None
    assert len(out.stats) == 2  # "Timings (microseconds): count=..." is not a Run() line
    assert timed_runs(out).avg_us == 79732


def test_oldest_format_no_stats_and_glog_prefix():
    out = parse_benchmark_output(OLDEST)
    assert out.inference_avg_us == 137722 and out.warmup_avg_us == 146161
    warm, timed = out.stats
    assert warm.is_single_run and warm.curr_us == 146161 and warm.avg_us is None
    assert timed.min_us == 137079


@pytest.mark.parametrize("line, count, curr, same", [
    ("count=5 curr=5203(all same)", 5, 5203, True),
    ("INFO: count=1 curr=146161", 1, 146161, False),
    ("count=5 curr=5203(all same) p5=5203 median=5203 p95=5203", 5, 5203, True),
])
def test_all_same_and_single_run_lines(line, count, curr, same):
    st = parse_stat_line(line)
    assert (st.count, st.curr_us, st.all_same) == (count, curr, same)
    assert st.mean_us == curr  # every run took `curr`
    assert st.is_single_run == (count == 1)


def test_count_zero_and_non_stat_lines():
    assert parse_stat_line("count=0").count == 0
    assert math.isnan(parse_stat_line("count=0").curr_us)
    assert parse_stat_line("Memory (bytes): count=0") is None
    assert parse_stat_line("INFO: Num runs: [50]") is None
    assert parse_stat_line("recount=5 curr=1") is None


def test_summary_only_output_and_garbage():
    logcat = "11-25 17:50:00.000  1234  1234 I tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1\n"
    out = parse_benchmark_output(logcat)
    assert out.inference_avg_us == 80660.1 and timed_runs(out) is None  # only an average
    with pytest.raises(BenchmarkOutputError):
        timed_runs(parse_benchmark_output("ERROR: Could not open '/x.tflite'.\n"))
    with pytest.raises(BenchmarkOutputError):  # a single line without summary: which run?
        timed_runs(parse_benchmark_output("count=3 first=1 curr=2 min=1 max=3 avg=2 std=1\n"))
    with pytest.raises(BenchmarkOutputError):
        timed_runs(parse_benchmark_output("count=1 curr=5\ncount=0\n"))


def test_scientific_notation_avg():
    st = parse_stat_line("count=3 first=1200000 curr=1300000 min=1200000 max=1300000 avg=1.23457e+06 std=47140")
    assert st.avg_us == pytest.approx(1234570)


def test_command_line_flags_and_quoting():
    argv = benchmark_command("/data/local/tmp/ll/bin/bm", "/data/local/tmp/a b;touch x.tflite", 224,
                             runs=1, warmup_runs=2, threads=1, mask="f0", input_layer="image")
    assert argv[:3] == ["taskset", "f0", "/data/local/tmp/ll/bin/bm"]
    assert "--graph=/data/local/tmp/a b;touch x.tflite" in argv
    for flag in ("--num_threads=1", "--warmup_runs=2", "--warmup_min_secs=0", "--num_runs=1",
                 "--min_secs=0", "--use_xnnpack=true", "--input_layer=image",
                 "--input_layer_shape=1,224,224,3"):
        assert flag in argv
    line = shell_command(argv)
    assert shlex.split(line) == argv  # the phone's shell sees exactly these words
    # and a real POSIX shell runs nothing else: echo the words back
    printed = subprocess.run(["sh", "-c", "printf '%s\\n' " + shell_command(argv[3:])],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert printed == argv[3:]


def test_command_without_pinning_or_resize_and_bad_counts():
    argv = benchmark_command("bm", "m.tflite", 160, runs=8, warmup_runs=0, xnnpack=False)
    assert argv[0] == "bm" and "--use_xnnpack=false" in argv
    assert not any(a.startswith("--input_layer_shape") for a in argv)
    with pytest.raises(ValueError):
        benchmark_command("bm", "m.tflite", 160, runs=0, warmup_runs=1)


# -- what the binary says it applied -----------------------------------------------------------

# A TF 2.x build on a Raspberry Pi 4 (2021; lines from a log kept in a public test fixture):
# no log prefix, a flag it did not know, XNNPACK applied to part of the graph.
RPI_2021 = """\
STARTING!
Unconsumed cmdline flags: --allow_fp16
Log parameter values verbosely: [0]
Min num runs: [50]
Max runs duration (seconds): [180]
Num threads: [4]
Graph: [m.tflite]
#threads used for CPU inference: [4]
Use gpu: [1]
Use xnnpack: [1]
Loaded model m.tflite
GPU acceleration is unsupported on this platform.
XNNPACK delegate created.
Going to apply 1 delegates one after another.
Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 22 delegate kernels.
Initialized session in 18.738ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 180 seconds.
count=6 first=140706 curr=74599 min=74599 max=140706 avg=85791.2 std=24559

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 180 seconds.
count=50 first=74456 curr=74516 min=73909 max=75323 avg=74481.6 std=268

Inference timings in us: Init: 18738, First inference: 140706, Warmup (avg): 85791.2, Inference (avg): 74481.6
"""


def test_applied_reads_unconsumed_flags_and_a_partial_delegate():
    argv = ["--graph=m.tflite", "--num_runs=50", "--max_secs=180", "--num_threads=4",
            "--use_gpu=true", "--use_xnnpack=true", "--allow_fp16"]
    report = applied(argv, RPI_2021)
    assert report == Applied("xnnpack partial (22 kernels)", "xnnpack", ("--allow_fp16",))
    assert not report.differs and report.note() == "benchmark_model ignored --allow_fp16"
    assert timed_runs(parse_benchmark_output(RPI_2021)).count == 50


@pytest.mark.parametrize("line, delegate", [
    ("INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.", "xnnpack"),
    ("INFO: Though XNNPACK delegate is explicitly applied, the model graph will not be executed by the delegate.", "none"),
    ("Applied XNNPACK delegate, and the model graph will be completely executed w/ the delegate.", "xnnpack"),  # TF 2.2-2.3
    ("ERROR: Failed to apply XNNPACK delegate.", "none"),
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "xnnpack (runtime default)"),
    ("INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.", "unknown"),
])
def test_the_delegate_is_the_one_the_log_names(line, delegate):
    text = f"INFO: Use xnnpack: [1]\n{line}\n"
    assert applied(["--use_xnnpack=true"], text).delegate == delegate


def test_a_flag_without_its_parameter_line_was_not_applied():
    # TF 1.x's LogFlags prints a fixed list; nothing of XNNPACK or the minimum durations
    tf1 = "Num runs: [1]\nNum threads: [1]\nWarmup runs: [1]\nGraph: [m.tflite]\nUse nnapi : [0]\n"
    argv = benchmark_command("bm", "m.tflite", 64, runs=1, warmup_runs=1)[1:]
    report = applied(argv, tf1)
    assert report.ignored == ("--warmup_min_secs=0", "--min_secs=0", "--use_xnnpack=true")
    assert report.delegate == "none" and report.differs
    assert report.note() == ("benchmark_model ignored --warmup_min_secs=0 --min_secs=0 "
                             "--use_xnnpack=true and ran with delegate none where xnnpack was asked")
    # TF 2.3 logged every parameter, a space before the colon of some
    assert applied(["--use_xnnpack=false"], "Use xnnpack : [0]\n") == Applied("none", "none", ())


def test_error_lines_with_and_without_a_severity():
    text = ("INFO: Loaded model m\nERROR: Failed to allocate tensors!\nERROR: Benchmarking failed.\n"
            "Please specify the name of your TF Lite input file with --graph\ncount=1 curr=5\n")
    assert error_lines(text) == ["ERROR: Failed to allocate tensors!", "ERROR: Benchmarking failed.",
                                 "Please specify the name of your TF Lite input file with --graph"]
