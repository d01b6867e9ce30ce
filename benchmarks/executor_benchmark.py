"""Benchmark: where a search's evaluations run (local, local:N, Ray) and what it costs.

Measures, on this machine, with the 1-minute load average beside every figure:

1. Per-task overhead of an executor: a batch of no-op tasks (worker time per task =
   wall x slots / tasks) and the round trip of one task alone (median of --round-trips).
2. The evaluations of one real search: RBIS from EfficientNet-B0 at --resolution px to
   --budget-factor x its latency (latency from the SYNTHETIC analytic model, so that only the
   evaluations cost time), every candidate scored by a real CPU-bound evaluator (default
   zen-tuned, one torch thread, batch 8), with each executor: wall time inside the
   evaluation batches, and the whole search. The traces must be identical (checked).
3. Speed-up from 1 to 2 workers: local:1 -> local:2, and Ray with one task at a time (each
   asks for both CPUs) -> two. The five configurations run interleaved, repeat by repeat;
   beside each run, the CPU its session got per wall second (see `group_cpu_s`).

    PYTHONPATH=. python benchmarks/executor_benchmark.py [--quick] [--max-load L] [--render JSON]

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


def group_cpu_s() -> float:
    """CPU seconds used so far by the processes of this process's scheduler autogroup (its
    session: this script and every worker it started, local or Ray on this machine), with the
    children each has reaped: Ray replaces idle workers between batches (seen in its logs,
    e.g. a new worker in the middle of a search), and a worker that exits within a timed window
    must not take its CPU out of the sum. With sched_autogroup (on here) the kernel shares the
    CPU fairly between sessions, so this group's CPU per wall second is the number of cores
    the executor actually got."""
    mine = Path("/proc/self/autogroup").read_text().split()[0]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "autogroup").read_text().split()[0] != mine:
                continue
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / tick    # u/s time, children's
        except (OSError, IndexError, ValueError):
            continue                                                # gone meanwhile
    return total


def autogroup_enabled() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def wait_for_load(max_load: float | None, max_wait: float) -> float:
    t = time.monotonic()
    while max_load is not None and load() > max_load and time.monotonic() - t < max_wait:
        time.sleep(5)
    return load()


def start_ray(cpus: int):
    """A local Ray instance with `cpus` CPUs (its workers at Ray's default nice 15: within
    this session's autogroup that only yields to this script, which waits)."""
    import logging

    import ray

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


def runner_for(ex, cpus_per_task: float | None):
    """The search's runner on `ex`; with `cpus_per_task`, every task asks for that many CPUs
    (2 on the 2-CPU Ray instance: one evaluation at a time, the 1-worker case)."""
    from latency_lab.scaleout.executors import Resources
    from latency_lab.search.evaluators import evaluation_runner
    from latency_lab.search.evaluators import run_request

    if cpus_per_task is None:
        return evaluation_runner(ex)
    return lambda ev, requests: ex.map_unordered(run_request, list(requests),
                                                 Resources(cpus=cpus_per_task))


def search(ex, inner, evaluator_text: str, resolution: int, budget_factor: float,
           k: int) -> dict:
    """One RBIS search whose evaluations go through `inner` (a runner on `ex`); timed inside
    the evaluation batches, wall and CPU."""
    from latency_lab.network.presets import efficientnet_b0
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.search.rbis import run_rbis
    from latency_lab.search.sources import parse_latency_source

    b0 = efficientnet_b0()
    source = parse_latency_source(LATENCY)
    budget = budget_factor * source.latency_ms(b0, resolution)
    evaluator = parse_evaluator(evaluator_text, elsewhere=ex.spec.kind != "local")
    batches: list[dict] = []

    def timed(ev, requests):
        t, cpu, n = time.perf_counter(), group_cpu_s(), 0
        for item in inner(ev, requests):
            n += 1
            yield item
        batches.append({"n": n, "wall_s": time.perf_counter() - t,
                        "cpu_s": group_cpu_s() - cpu})

    before = load()
    t = time.perf_counter()
    result = run_rbis(b0, budget, [resolution], source, evaluator, None, k, run=timed)
    total = time.perf_counter() - t
    evals = sum(b["n"] for b in batches)
    wall = sum(b["wall_s"] for b in batches)
    cpu = sum(b["cpu_s"] for b in batches)
    return {"executor": ex.spec.text, "evaluations": evals,
            "batches": len(batches), "evaluation_wall_s": round(wall, 2),
            "per_evaluation_s": round(wall / max(evals, 1), 3),
            "cpu_s_per_evaluation": round(cpu / max(evals, 1), 3),
            "cores_obtained": round(cpu / wall, 2) if wall else None,
            "search_wall_s": round(total, 2), "load_before": before, "load_after": load(),
            "trace": result.trace}


# (label, executor, CPUs per task on Ray, slots): Ray's 1-worker case is the same 2-CPU
# instance with tasks that take both CPUs, so that all five run interleaved, repeat by repeat,
# and a change in the machine's load falls on all of them alike.
CONFIGS = [("local", "local", None, 1), ("local:1", "local:1", None, 1),
           ("local:2", "local:2", None, 2), ("ray, 1 worker", "ray", 2.0, 1),
           ("ray, 2 workers", "ray", 1.0, 2)]


def run(args) -> dict:
    from latency_lab.scaleout.executors import open_executor, parse_executor

    report: dict = {"machine": f"{os.cpu_count()} cores", "autogroup": autogroup_enabled(),
                    "evaluator": args.evaluator,
                    "resolution": args.resolution, "budget_factor": args.budget_factor,
                    "candidates_k": args.candidates, "overhead": {}, "search": []}
    print(f"evaluator {args.evaluator} at {args.resolution} px; load now {load()}", flush=True)
    report["ray_start_s"] = round(start_ray(2), 2)
    executors = {text: open_executor(parse_executor(text)) for text in ("local", "local:1", "local:2",
                                                                "ray")}
    traces = []
    try:
        for text in ("local:2", "ray"):
            wait_for_load(args.max_load, args.max_wait)
            report["overhead"][text] = overhead(executors[text], args.tasks, args.round_trips)
            print(f"overhead {text}: {report['overhead'][text]}", flush=True)
        for rep in range(args.repeats):
            for label, text, cpus, slots in CONFIGS:
                wait_for_load(args.max_load, args.max_wait)
                ex = executors[text]
                row = search(ex, runner_for(ex, cpus), args.evaluator, args.resolution,
                             args.budget_factor, args.candidates)
                traces.append(row.pop("trace"))
                row.update(label=label, slots=slots, repeat=rep)
                report["search"].append(row)
                print(f"search {label} #{rep}: {row}", flush=True)
    finally:
        for ex in executors.values():
            ex.close()
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
             "ray, 1 worker -> 2 workers": ("ray, 1 worker", "ray, 2 workers"),
             "local (in-process) -> local:2": ("local", "local:2"),
             "local (in-process) -> ray, 2 workers": ("local", "ray, 2 workers")}
    return {name: round(med[a] / med[b], 2) for name, (a, b) in pairs.items()
            if a in med and b in med}


SPEEDUP_TARGET = 1.7          # from 1 to 2 workers on CPU-bound evaluations
OVERHEAD_TARGET_MS = 50.0     # Ray's per-task overhead


def verdict(report: dict) -> list[str]:
    """The targets against what was measured. A 1 -> 2 worker speed-up can only show where
    the 2-worker runs got the CPU for it: below SPEEDUP_TARGET cores obtained, the run says
    so instead of calling the target missed."""
    lines = []
    ray = report["overhead"].get("ray")
    if ray:
        ok = ray["round_trip_ms_median"] < OVERHEAD_TARGET_MS
        lines.append(f"- Ray per-task overhead: {ray['round_trip_ms_median']} ms round trip "
                     f"(median of a lone task; p90 {ray['round_trip_ms_p90']} ms), "
                     f"{ray['per_task_ms']} ms of worker time per task in a batch, at load "
                     f"{ray['load_before']}: target < {OVERHEAD_TARGET_MS:g} ms "
                     f"{'met' if ok else 'NOT met'}.")
    warm = [r for r in report["search"] if r["repeat"] > 0] or report["search"]
    def cores(slots):
        got = [r["cores_obtained"] for r in warm if r["slots"] == slots and r["cores_obtained"]
               and r["label"] != "local"]
        return round(statistics.median(got), 2) if got else None

    got, one = cores(2), cores(1)
    pairs = {k: v for k, v in report["speedup"].items() if "1 worker" in k or "local:1" in k}
    shown = ", ".join(f"{k} {v}x" for k, v in pairs.items())
    loads = [x for r in warm for x in (r["load_before"], r["load_after"])]
    if got is not None and got < SPEEDUP_TARGET:
        lines.append(f"- Speed-up from 1 to 2 workers: {shown}. Target >= {SPEEDUP_TARGET}x "
                     f"NOT MEASURABLE in this run: a second worker is faster only with a "
                     f"second core, and the 2-worker runs obtained a median of {got} cores "
                     f"against {one} for the 1-worker runs (load {min(loads)} to "
                     f"{max(loads)}; the kernel shares the CPU between sessions, so other "
                     f"sessions' work caps this one's cores whatever its number of workers): "
                     f"a ceiling of about {round(got / one, 2) if one else '?'}x, which "
                     f"measures the machine's sharing, not the executor.")
    elif got is not None:
        ok = all(v >= SPEEDUP_TARGET for v in pairs.values())
        lines.append(f"- Speed-up from 1 to 2 workers: {shown} with {got} cores obtained: "
                     f"target >= {SPEEDUP_TARGET}x {'met' if ok else 'NOT met'}.")
    return lines + [f"- {note}" for note in report.get("notes", [])]


def markdown(report: dict) -> str:
    from tabulate import tabulate

    lines = ["# Executor benchmark\n",
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
             r["per_evaluation_s"], r["cpu_s_per_evaluation"], r["cores_obtained"],
             r["search_wall_s"], f"{r['load_before']} / {r['load_after']}"]
            for r in report["search"]]
    lines.append(tabulate(rows, ["executor", "run", "evaluations", "batches",
                                 "evaluation wall s", "wall s per evaluation",
                                 "CPU s per evaluation", "cores obtained", "search wall s",
                                 "load"], tablefmt="github"))
    if report.get("autogroup"):
        lines.append("\nThis kernel shares the CPU between sessions (sched_autogroup), not "
                     "between processes: workers started by one session share that session's "
                     "part of the machine, whatever their number. `cores obtained` is the "
                     "CPU the benchmark's session (script and workers) used per wall second "
                     "during the evaluations; a speed-up from 1 to 2 workers needs the second "
                     "core to be free of other sessions' work.")
    lines.append("\nRun 0 of each executor includes starting its workers (process spawn, torch "
                 "import, evaluator set-up in each); later runs evaluate on warm workers.\n")
    lines.append("\n## Speed-up (median evaluation wall time of the warm runs)\n")
    lines.append(tabulate(list(report["speedup"].items()), ["from -> to", "speed-up"],
                          tablefmt="github"))
    if report.get("ray_start_s"):
        lines.append(f"\nRay start-up (a local instance, 2 CPUs): {report['ray_start_s']} s")
    lines.append("\n## Against the targets\n")
    lines += verdict(report)
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
    ap.add_argument("--render", metavar="JSON",
                    help="measure nothing: write the markdown of an earlier run's JSON")
    args = ap.parse_args()
    from latency_lab.fileio import write_atomic

    if args.render:
        report = json.loads(Path(args.render).read_text())
        write_atomic(Path(args.render).with_suffix(".md"), markdown(report))
        print(markdown(report))
        return 0
    if args.quick:
        args.resolution, args.budget_factor, args.candidates = 64, 1.15, 4
        args.tasks, args.round_trips, args.repeats = 40, 5, 1
    report = run(args)
    out = Path(args.out)

    write_atomic(out.with_suffix(".json"), json.dumps(report, indent=2))
    write_atomic(out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    return 0 if report["identical_traces"] else 1


if __name__ == "__main__":
    sys.exit(main())
