"""Benchmark: where a search's evaluations run (local, local:N, Ray) and what it costs.

Measures, on this machine, with the 1-minute load average beside every figure:

1. Per-task overhead of an executor: a batch of no-op tasks (worker time per task =
   wall x slots / tasks) and the round trip of one task alone (median of --round-trips).
2. The evaluations of one real search: RBIS from EfficientNet-B0 at --resolution px to
   --budget-factor x its latency (latency from the SYNTHETIC analytic model, so that only the
   evaluations cost time), every candidate scored by a real CPU-bound evaluator (default
   zen-tuned, one torch thread, batch 8), with each executor: wall time inside the
   evaluation batches, and the whole search. The traces must be identical (checked).
3. Speed-up from 1 to 2 workers: local:1 -> local:2, and Ray with 1 CPU -> 2 CPUs. Ray runs
   its workers at nice 15 by default; a last run sets them to 0, as local:N's are, because on
   a shared machine the niceness decides how much of the CPU they get.

    PYTHONPATH=. python benchmarks/executor_benchmark.py [--quick] [--max-load L]

`--max-load L` waits (up to --max-wait s) for the 1-minute load to fall under L before each
measurement: on a shared machine other people's work takes the second core that local:2
needs. Results: results/benchmarks/executor_benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "results" / "benchmarks"
LATENCY = "py:benchmarks.analytic_sources:latency_ms"


def noop(x):
    return x


def load() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_load(max_load: float | None, max_wait: float) -> float:
    t = time.monotonic()
    while max_load is not None and load() > max_load and time.monotonic() - t < max_wait:
        time.sleep(5)
    return load()


def start_ray(cpus: int, niceness: int | None = None):
    """A local Ray instance with `cpus` CPUs. Ray runs its workers at nice 15 by default (the
    raylet stays responsive); `niceness` overrides that (RAY_worker_niceness), which matters
    on a machine where other people's processes compete at nice 0."""
    import logging

    import ray

    if ray.is_initialized():
        ray.shutdown()
    if niceness is None:
        os.environ.pop("RAY_worker_niceness", None)
    else:
        os.environ["RAY_worker_niceness"] = str(niceness)
    t = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, _temp_dir=tempfile.mkdtemp(prefix="llbench-", dir="/tmp"))
    return time.perf_counter() - t


def overhead(ex, n_tasks: int, round_trips: int) -> dict:
    """No-op tasks: worker time per task in a batch, and the round trip of a lone task."""
    list(ex.map_unordered(noop, list(range(ex.workers))))          # warm the workers
    before = load()
    t = time.perf_counter()
    assert sorted(i for i, _ in ex.map_unordered(noop, list(range(n_tasks)))) == \
        list(range(n_tasks))
    wall = time.perf_counter() - t
    trips = []
    for i in range(round_trips):
        t = time.perf_counter()
        list(ex.map_unordered(noop, [i]))
        trips.append(time.perf_counter() - t)
    return {"tasks": n_tasks, "slots": ex.workers, "batch_wall_s": round(wall, 3),
            "per_task_ms": round(1000 * wall * ex.workers / n_tasks, 2),
            "round_trip_ms_median": round(1000 * statistics.median(trips), 2),
            "round_trip_ms_p90": round(1000 * sorted(trips)[int(0.9 * len(trips))], 2),
            "load_before": before, "load_after": load()}


def search(ex, evaluator_text: str, resolution: int, budget_factor: float, k: int) -> dict:
    """One RBIS search whose evaluations go through `ex`; timed inside the batches."""
    from latency_lab.executors import evaluation_runner
    from latency_lab.presets import efficientnet_b0
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.search.rbis import run_rbis
    from latency_lab.search.sources import parse_latency_source

    b0 = efficientnet_b0()
    source = parse_latency_source(LATENCY)
    budget = budget_factor * source.latency_ms(b0, resolution)
    evaluator = parse_evaluator(evaluator_text, elsewhere=ex.spec.kind != "local")
    inner = evaluation_runner(ex)
    batches: list[dict] = []

    def timed(ev, requests):
        t, n = time.perf_counter(), 0
        for item in inner(ev, requests):
            n += 1
            yield item
        batches.append({"n": n, "wall_s": time.perf_counter() - t})

    before = load()
    t = time.perf_counter()
    result = run_rbis(b0, budget, [resolution], source, evaluator, None, k, run=timed)
    total = time.perf_counter() - t
    evals = sum(b["n"] for b in batches)
    wall = sum(b["wall_s"] for b in batches)
    return {"executor": ex.spec.text, "slots": ex.workers, "evaluations": evals,
            "batches": len(batches), "evaluation_wall_s": round(wall, 2),
            "per_evaluation_s": round(wall / max(evals, 1), 3),
            "search_wall_s": round(total, 2), "load_before": before, "load_after": load(),
            "trace": result.trace}


def run(args) -> dict:
    from latency_lab.executors import parse_executor

    report: dict = {"machine": f"{os.cpu_count()} cores", "evaluator": args.evaluator,
                    "resolution": args.resolution, "budget_factor": args.budget_factor,
                    "candidates_k": args.candidates, "overhead": {}, "search": []}
    print(f"evaluator {args.evaluator} at {args.resolution} px; load now {load()}", flush=True)
    configs = [("local", None, None), ("local:1", None, None), ("local:2", None, None),
               ("ray", 1, None), ("ray", 2, None), ("ray", 2, 0)]
    traces = []
    for text, cpus, nice in configs:
        label = f"ray ({cpus} CPU{'s' if cpus > 1 else ''}" + \
            (f", workers at nice {nice})" if nice is not None else ")") if cpus else text
        if cpus:
            report.setdefault("ray_start_s", {})[label] = round(start_ray(cpus, nice), 2)
        with parse_executor(text).open() as ex:
            if text not in ("local", "local:1") and cpus != 1:
                wait_for_load(args.max_load, args.max_wait)
                report["overhead"][label] = overhead(ex, args.tasks, args.round_trips)
                print(f"overhead {label}: {report['overhead'][label]}", flush=True)
            for rep in range(args.repeats):
                wait_for_load(args.max_load, args.max_wait)
                row = search(ex, args.evaluator, args.resolution, args.budget_factor,
                             args.candidates)
                traces.append(row.pop("trace"))
                row.update(label=label, repeat=rep)
                report["search"].append(row)
                print(f"search {label} #{rep}: {row}", flush=True)
    if cpus:
        import ray

        ray.shutdown()
    report["identical_traces"] = all(t == traces[0] for t in traces)
    report["speedup"] = speedups(report["search"])
    return report


def speedups(rows: list[dict]) -> dict:
    """From the runs after the first of each executor where there are such (warm workers:
    the first run pays for spawning them and importing torch there)."""
    warm = [r for r in rows if r["repeat"] > 0] or rows
    med = {lab: statistics.median(r["evaluation_wall_s"] for r in warm if r["label"] == lab)
           for lab in {r["label"] for r in warm}}
    pairs = {"local:1 -> local:2": ("local:1", "local:2"),
             "ray 1 CPU -> 2 CPUs": ("ray (1 CPU)", "ray (2 CPUs)"),
             "local:1 -> ray (2 CPUs, workers at nice 0)": ("local:1",
                                                           "ray (2 CPUs, workers at nice 0)"),
             "local (in-process) -> local:2": ("local", "local:2"),
             "local (in-process) -> ray (2 CPUs)": ("local", "ray (2 CPUs)")}
    return {name: round(med[a] / med[b], 2) for name, (a, b) in pairs.items()
            if a in med and b in med}


def markdown(report: dict) -> str:
    from tabulate import tabulate

    lines = [f"# Executor benchmark\n",
             f"Machine: {report['machine']}, shared (load = 1-minute load average, before / "
             f"after). Evaluator `{report['evaluator']}` (real Zen-Score computations, CPU-bound, "
             f"one torch thread each) on the candidates of RBIS from EfficientNet-B0 at "
             f"{report['resolution']} px to {report['budget_factor']}x its latency (latency: "
             f"synthetic analytic model), K = {report['candidates_k']}. Identical traces under "
             f"every executor: {report['identical_traces']}.\n",
             "## Per-task overhead (no-op tasks)\n"]
    rows = [[k, v["tasks"], v["slots"], v["per_task_ms"], v["round_trip_ms_median"],
             v["round_trip_ms_p90"], f"{v['load_before']} / {v['load_after']}"]
            for k, v in report["overhead"].items()]
    lines.append(tabulate(rows, ["executor", "tasks", "slots", "worker ms per task (batch)",
                                 "round trip ms (median)", "round trip ms (p90)", "load"],
                          tablefmt="github"))
    lines.append("\n## The evaluations of one search\n")
    rows = [[r["label"], r["repeat"], r["evaluations"], r["batches"], r["evaluation_wall_s"],
             r["per_evaluation_s"], r["search_wall_s"], f"{r['load_before']} / {r['load_after']}"]
            for r in report["search"]]
    lines.append(tabulate(rows, ["executor", "run", "evaluations", "batches",
                                 "evaluation wall s", "s per evaluation", "search wall s",
                                 "load"], tablefmt="github"))
    lines.append("\nRun 0 of each executor includes starting its workers (process spawn, torch "
                 "import, evaluator set-up in each); later runs evaluate on warm workers.\n")
    lines.append("\n## Speed-up (median evaluation wall time of the warm runs)\n")
    lines.append(tabulate(list(report["speedup"].items()), ["from -> to", "speed-up"],
                          tablefmt="github"))
    if report.get("ray_start_s"):
        lines.append("\nRay start-up (local instance): " + ", ".join(
            f"{k} {v} s" for k, v in report["ray_start_s"].items()))
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluator", default="zen-tuned,threads=1,batch=8")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--budget-factor", type=float, default=1.5)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2,
                    help="searches per executor; the first includes starting its workers")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--round-trips", type=int, default=30)
    ap.add_argument("--max-load", type=float, default=None)
    ap.add_argument("--max-wait", type=float, default=600)
    ap.add_argument("--quick", action="store_true", help="a small search (a smoke run)")
    ap.add_argument("--out", default=str(OUT / "executor_benchmark"))
    args = ap.parse_args()
    if args.quick:
        args.resolution, args.budget_factor, args.candidates = 64, 1.15, 4
        args.tasks, args.round_trips, args.repeats = 40, 5, 1
    report = run(args)
    out = Path(args.out)
    from latency_lab.fileio import write_atomic

    write_atomic(out.with_suffix(".json"), json.dumps(report, indent=2))
    write_atomic(out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    return 0 if report["identical_traces"] else 1


if __name__ == "__main__":
    sys.exit(main())
