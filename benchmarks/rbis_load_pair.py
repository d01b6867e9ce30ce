"""A live RBIS search on the cpu device, repeated at a quiet and a busy time: same winner?

Issue 23's target. The same search twice, each in a fresh store and cache: once on the machine
as it is (`quiet`), once with a real CPU load beside it (`busy`: `stress-ng --cpu 1`, on this
2-core host). Both put their live latencies on the scale of the committed quiet table
(`--latency-scale results/cpu/latency-table-b0-search.csv`: every batch measures the base
network at its resolution with its candidates, and is divided by its factor against the
table's row), so the fixed budget (B1@240 as recorded there, 20.549 ms) means the same in both.
The load average is logged every 30 s beside each search; `pair.md` gives both winners, the
loads and the batch factors (how much slower than the quiet table each batch ran).

    PYTHONPATH=. .venv/bin/python benchmarks/rbis_load_pair.py [--half quiet|busy|both|report]
        [--out results/cpu/rbis-load-pair] [--max-rounds 8]
    PYTHONPATH=. .venv/bin/python benchmarks/rbis_load_pair.py --out DIR --pair A=DIR1 B=DIR2

`--half quiet` reruns only the quiet half (on a machine nobody else uses: load about 1) and
rewrites `pair.md` from whatever halves OUT holds. Each half's folder keeps the search's files,
its `run.log` (command, stdout, stderr, the load lines), `load.csv` and its store
(`measurements.sqlite`: every raw sample with the load at its visit).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = "results/cpu/latency-table-b0-search.csv"
BUDGET_MS = 20.549          # B1@240 in the recorded (quiet) compare: the README's budget
SEARCH = ["search", "--network", "efficientnet-b0", "--budget-ms", str(BUDGET_MS),
          "--resolutions", "240,256", "--stages", "4,5,6", "--candidates", "4",
          "--accuracy", "synthetic", "--latency", "cpu", "--latency-scale", TABLE,
          "--ci-target-pct", "2"]
MAX_ROUNDS = 8


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        a, b, c = f.read().split()[:3]
    return float(a), float(b), float(c)


def search_args(max_rounds: int) -> list[str]:
    return [*SEARCH, "--max-rounds", str(max_rounds)]


def run_half(half: str, out: Path, latency_lab: str, max_rounds: int = MAX_ROUNDS) -> None:
    folder = out / half
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cmd = [latency_lab, *search_args(max_rounds), "--out", str(folder), "--store",
           str(folder / "measurements.sqlite")]
    env = {**os.environ, "LATENCY_LAB_CACHE": str(folder / "cache")}
    loads, stop = [], threading.Event()

    def log_load():
        while True:
            loads.append((time.time(), *loadavg()))
            if stop.wait(30):
                return

    stress = None
    if half == "busy":
        stress = subprocess.Popen(["stress-ng", "--cpu", "1", "--quiet"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(60)      # let the 1-minute load average see it before the search starts
    logger = threading.Thread(target=log_load, daemon=True)
    logger.start()
    t0 = time.time()
    with open(folder / "run.log", "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.write(f"start {time.strftime('%FT%TZ', time.gmtime(t0))} load {loadavg()}"
                  + (" with stress-ng --cpu 1 beside it\n" if stress else "\n"))
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.write(f"rc={rc} wall {time.time() - t0:.0f} s end load {loadavg()}\n")
    stop.set()
    logger.join()
    if stress is not None:
        stress.terminate()
        stress.wait()
    shutil.rmtree(folder / "cache", ignore_errors=True)
    with open(folder / "load.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "load1", "load5", "load15"])
        w.writerows(loads)
    if rc != 0:
        sys.exit(f"{half}: latency-lab search failed (rc={rc}), see {folder / 'run.log'}")


def monotone(folder: Path) -> tuple[int, int, int, int]:
    """Pairs of the trace where a network ran faster than one it contains: on the scale (and
    how many of those beyond their CIs), and as measured (each latency times its factor)."""
    import importlib.util
    import tempfile

    spec = importlib.util.spec_from_file_location("check_monotone",
                                                  ROOT / "benchmarks/check_monotone.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    scaled = check.violations(folder / "trace.csv")
    rows = list(csv.DictReader(open(folder / "trace.csv", newline="")))
    for r in rows:
        f = float(r["scale_factor"] or 1)
        r["latency_ms"] = float(r["latency_ms"]) * f
        r["latency_ci_low_ms"] = r["latency_ci_high_ms"] = ""
    with tempfile.TemporaryDirectory() as tmp:
        raw_trace = Path(tmp) / "trace.csv"
        with open(raw_trace, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        raw = check.violations(raw_trace)
    beyond = sum(1 for v in scaled if v["tie"] is False)
    return len(scaled), beyond, len(raw), len(rows)


def describe(folder: Path) -> dict | None:
    if not (folder / "result.json").exists():
        return None
    result = json.loads((folder / "result.json").read_text())
    state = json.loads((folder / "state.json").read_text())
    batches = state["latency_scale"]["batches"]
    loads = [float(r["load1"]) for r in csv.DictReader(open(folder / "load.csv"))]
    log = (folder / "run.log").read_text().splitlines()
    wall = next((x.split("wall ")[1].split(" s")[0] for x in log if x.startswith("rc=")), "?")
    return {"resolution": result["resolution"], "latency_ms": result["latency_ms"],
            "fingerprint": next(p["fingerprint"] for p in result["per_resolution"]
                                if p["resolution"] == result["resolution"]),
            "per_resolution": [(p["resolution"], p.get("fingerprint"), p.get("latency_ms"),
                                p.get("iterations")) for p in result["per_resolution"]],
            "factors": [b["factor"] for b in batches], "batches": len(batches),
            "load": (min(loads), statistics.mean(loads), max(loads)) if loads else None,
            "wall_s": wall, "start": log[1] if len(log) > 1 else "",
            "monotone": monotone(folder),
            "ci_pct": statistics.median(
                100 * (float(r["latency_ci_high_ms"]) - float(r["latency_ci_low_ms"])) / 2
                / float(r["latency_ms"]) for r in csv.DictReader(open(folder / "trace.csv")))}


def write_pair(out: Path, folders: dict[str, Path] | None = None,
               title: str = "Live RBIS at a quiet and a busy time, on one latency scale") -> str:
    """pair.md in `out`, comparing `folders` (name -> a half's folder; default OUT/quiet and
    OUT/busy): `--pair A=DIR B=DIR ...` compares any runs, e.g. repeats at one load (A/A)."""
    folders = folders or {h: out / h for h in ("quiet", "busy")}
    halves = {h: describe(f) for h, f in folders.items()}
    cmds = {(f / "run.log").read_text().splitlines()[0].split(" search ", 1)[1]
            .split(" --out ")[0] for f in folders.values() if (f / "run.log").exists()}
    lines = [f"# {title}", "",
             "Written by `benchmarks/rbis_load_pair.py` (its docstring says how). Search: `"
             + " / ".join(f"latency-lab search {c}" for c in sorted(cmds)) + " --out HALF --store "
             "HALF/measurements.sqlite`; `busy` with `stress-ng --cpu 1` beside it.", "",
             "| | " + " | ".join(f"{h} (`{_rel(f)}`)" for h, f in folders.items()) + " |",
             "|---|" + "---|" * len(halves)]

    def row(name, f):
        lines.append(f"| {name} | " + " | ".join(f(d) if d else "not run" for d in
                                                 halves.values()) + " |")

    row("winner", lambda d: f"{d['resolution']} px, {d['latency_ms']:.3f} ms, "
                            f"`{d['fingerprint']}`")
    for i, r in enumerate((240, 256)):
        row(f"{r} px", lambda d, i=i: (lambda p: f"`{p[1]}` {p[2]:.3f} ms, {p[3]} steps"
                                       if p[1] else "infeasible")(d["per_resolution"][i]))
    row("load average (1 min): min / mean / max", lambda d: "{:.1f} / {:.1f} / {:.1f}".format(
        *d["load"]) if d["load"] else "?")
    row("batches (reference measurements)", lambda d: str(d["batches"]))
    row("batch factor vs the quiet table: min / median / max", lambda d:
        f"{min(d['factors']):.2f} / {statistics.median(d['factors']):.2f} / "
        f"{max(d['factors']):.2f}")
    row("latency CI half-width on the scale, median over candidates",
        lambda d: f"+-{d['ci_pct']:.1f}%")
    row("pairs where a network ran faster than one it contains: on the scale (beyond their "
        "CIs) / as measured, unscaled", lambda d: f"{d['monotone'][0]} ({d['monotone'][1]}) / "
                                                  f"{d['monotone'][2]}")
    row("wall time", lambda d: f"{d['wall_s']} s")
    both = [d for d in halves.values() if d]
    if len(both) >= 2:
        same = len({(d["resolution"], d["fingerprint"]) for d in both}) == 1
        lines += ["", f"**Same winner: {'yes' if same else 'no'}.**"]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pair.md").write_text(text)
    return text


def _rel(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(ROOT))
    except ValueError:
        return str(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--half", choices=("quiet", "busy", "both", "report"), default="both",
                    help="report: only rewrite pair.md from the halves OUT holds")
    ap.add_argument("--out", type=Path, default=ROOT / "results/cpu/rbis-load-pair")
    ap.add_argument("--latency-lab", default=str(ROOT / ".venv/bin/latency-lab"))
    ap.add_argument("--max-rounds", type=int, default=MAX_ROUNDS,
                    help="rounds per point at most (the CI target is 2%%)")
    ap.add_argument("--pair", nargs="+", metavar="NAME=DIR",
                    help="only write OUT/pair.md comparing two or more runs' folders, e.g. "
                         "quiet-1=results/cpu/rbis-load-pair-r24/quiet quiet-2=...")
    args = ap.parse_args()
    if args.pair:
        if len(args.pair) < 2 or any("=" not in p for p in args.pair):
            sys.exit("--pair takes NAME=DIR NAME=DIR [NAME=DIR ...]")
        folders = {n: Path(d) for n, d in (p.split("=", 1) for p in args.pair)}
        print(write_pair(args.out.resolve(), folders, "The same live RBIS repeated, on one "
                         "latency scale: " + ", ".join(folders)))
        return
    if args.half in ("busy", "both") and not shutil.which("stress-ng"):
        sys.exit("the busy half needs stress-ng (apt-get install stress-ng)")
    halves = {"both": ("quiet", "busy"), "report": ()}.get(args.half, (args.half,))
    for half in halves:
        run_half(half, args.out.resolve(), args.latency_lab, args.max_rounds)
    print(write_pair(args.out.resolve()))


if __name__ == "__main__":
    main()
