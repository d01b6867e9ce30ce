"""Where a recorded RBIS run's wall time went: training, latency models, waiting for the CPU.

Reads a search's result directory as `latency-lab search` wrote it, with the run.log that
wrapped it (`/usr/bin/time` line "wall W s, user U s, sys S s" and one line per training,
"... (N s, M images/s)"), and optionally the run's store (--store: measurement samples and
evaluation timestamps). Then measures, now, what one latency model of the run's networks
costs with each builder (the Keras -> TFLite converter in its worker process, and the direct
emitter), wall and CPU seconds, so that the run's non-training time can be attributed.
Writes RESULT_DIR/time_split.md (and .json).

Usage: python benchmarks/rbis_time_split.py results/cpu/rbis-tiny-net2net [--store S]
       [--conversions 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def from_log(text: str) -> dict:
    wall = re.search(r"wall ([\d.]+) s, user ([\d.]+) s, sys ([\d.]+) s", text)
    trainings = [(int(e), float(s)) for e, s in
                 re.findall(r" (\d+) epoch\(s\) -> top-1 [\d.]+% \(([\d.]+) s,", text)]
    loads = [float(x) for x in re.findall(r"load ([\d.]+) [\d.]+ [\d.]+", text)]
    return {"wall_s": float(wall[1]), "cpu_s": float(wall[2]) + float(wall[3]),
            "trainings": len(trainings), "training_s": sum(s for _, s in trainings),
            "epochs": sum(e for e, _ in trainings), "loads": loads}


def from_store(path: Path) -> dict:
    """Seconds the timed inferences took, and the wall time covered by evaluations."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        samples = db.execute("SELECT count(*), sum(latency_ms) / 1000 FROM samples").fetchone()
        reads, models = db.execute("SELECT count(*), count(DISTINCT fingerprint) "
                                   "FROM measurements").fetchone()
        evals = db.execute("SELECT count(*), sum(seconds) FROM evaluations").fetchone()
    return {"samples": samples[0], "sampled_s": samples[1], "latency_reads": reads,
            "models": models,
            "evaluations": evals[0], "evaluation_s": evals[1]}


def cost(fn, n: int) -> dict:
    """Median wall and CPU seconds (this process and its finished children) of fn()."""
    walls, cpus = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "all_wall_s": [round(w, 2) for w in walls], "load": round(os.getloadavg()[0], 2)}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def model_costs(spec, resolution: int, n: int) -> dict:
    from latency_lab.models import build_keras
    from latency_lab.models.build_tflite import emit_tflite

    out = {"direct": cost(lambda: emit_tflite(spec, None), n)}
    # The converter's worker imports TensorFlow once per CONVERSIONS_PER_WORKER models; the
    # first conversion pays that import, so it is timed apart from the steady state.
    os.environ["LATENCY_LAB_CONVERT_IN_PROCESS"] = "1"   # CPU time of this process alone
    out["keras_first"] = cost(lambda: build_keras.convert_isolated(spec, None), 1)
    out["keras"] = cost(lambda: build_keras.convert_isolated(spec, None), n)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path)
    ap.add_argument("--store", type=Path, help="the run's measurements.sqlite, if kept")
    ap.add_argument("--conversions", type=int, default=3)
    args = ap.parse_args()
    from latency_lab.fileio import write_atomic
    from latency_lab.network.spec import NetworkSpec

    log = from_log((args.result / "run.log").read_text())
    result = json.loads((args.result / "result.json").read_text())
    store = from_store(args.store) if args.store else None
    spec = NetworkSpec.from_dict(result["network"])
    costs = model_costs(spec, result["resolution"], args.conversions)
    out = {"log": log, "store": store, "model_costs": costs, "network": spec.name,
           "fingerprint": spec.fingerprint, "when": time.strftime("%Y-%m-%d %H:%M %Z")}
    md = report(out, args.result.name)
    write_atomic(args.result / "time_split.json", json.dumps(out, indent=2))
    write_atomic(args.result / "time_split.md", md)
    print(md)
    return 0


def report(out: dict, name: str) -> str:
    log, store, c = out["log"], out["store"], out["model_costs"]
    other = log["wall_s"] - log["training_s"]
    lines = [f"# Where {name}'s wall time went", "",
             f"From run.log: {log['wall_s'] / 60:.1f} min wall, {log['cpu_s'] / 60:.1f} min of "
             f"CPU time (user + sys, children included) = {100 * log['cpu_s'] / log['wall_s']:.0f}% "
             f"of one core; load average {min(log['loads'])}-{max(log['loads'])} "
             "at start and end.", "",
             f"- training and evaluating: {log['trainings']} trainings, {log['epochs']} epochs, "
             f"{log['training_s'] / 60:.1f} min wall "
             f"({100 * log['training_s'] / log['wall_s']:.0f}%)",
             f"- everything else (latency models and measurement, search): "
             f"{other / 60:.1f} min wall ({100 * other / log['wall_s']:.0f}%)"]
    if store:
        lines.append(f"  - of which the timed inferences themselves: {store['samples']:,} samples, "
                     f"{store['sampled_s']:.0f} s, over {store['latency_reads']} latency reads")
    k, d = c["keras"], c["direct"]
    lines += ["", f"One latency model of the run's winner ({out['network']}, "
              f"{out['fingerprint']}), measured {out['when']}:", "",
              f"- Keras -> TFLite converter: {k['wall_s']:.1f} s wall, {k['cpu_s']:.1f} s CPU "
              f"(median of {len(k['all_wall_s'])}, load {k['load']}); the first in a process, "
              f"with TensorFlow's import: {c['keras_first']['wall_s']:.1f} s wall, "
              f"{c['keras_first']['cpu_s']:.1f} s CPU",
              f"- direct emitter: {d['wall_s']:.3f} s wall, {d['cpu_s']:.3f} s CPU "
              f"(median of {len(d['all_wall_s'])}, load {d['load']})"]
    if store:
        from latency_lab.models.build_keras import CONVERSIONS_PER_WORKER

        imports = -(-store["models"] // CONVERSIONS_PER_WORKER)
        conv = store["models"] * k["cpu_s"] + imports * (c["keras_first"]["cpu_s"] - k["cpu_s"])
        rest = log["cpu_s"] - conv
        share = log["cpu_s"] / log["wall_s"]
        lines += ["", f"The run built {store['models']} distinct models with the converter (its "
                  "device context has no `builder: direct`: the emitter was not yet in its "
                  f"tree): about {store['models']} x {k['cpu_s']:.1f} s + {imports} TensorFlow "
                  f"imports = {conv / 60:.1f} min of the run's {log['cpu_s'] / 60:.1f} CPU-min, "
                  f"leaving about {rest / 60:.1f} CPU-min for training, search and measuring; "
                  f"with the emitter the same models cost "
                  f"{store['models'] * d['cpu_s'] / 60:.2f} CPU-min.",
                  "", f"Estimate, not a measurement: with the emitter, the run's other "
                  f"{rest / 60:.1f} CPU-min at the share of a core it got "
                  f"({100 * share:.0f}%, load 7-10) take about {rest / share / 60:.0f} min "
                  f"wall; with a whole core, about {rest / 60:.0f} min."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
