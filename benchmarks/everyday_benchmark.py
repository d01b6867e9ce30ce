"""CPU seconds of the commands a new user runs most, as whole processes (issue 26).

Each command runs as a fresh process under `/usr/bin/time -f "%U %S"` (user + system CPU
seconds: steadier than wall time on this shared 2-core machine), `--repeats` times,
interleaved (A B C A B C ...) so that a change of load hits all alike, each in a new empty
working directory (a search writes its folder there; nothing is resumed). Prints and writes
the median, min and max CPU seconds and the median wall time of each, with the load average
before and after, the commit and the interpreter.

| command | what it is | target (issue 26) |
|---|---|---|
| offline search | the front page's search against the recorded table and LUT | < 1.0 CPU-s (was 2.7) |
| jumps | `latency-lab jumps` on a 61-point sweep (`results/cpu/...sweep_c.csv`) | < 1.0 CPU-s (was 2.6) |
| --help | `latency-lab --help` | < 0.3 CPU-s |
| import protocol | `python -c "import latency_lab.measure.protocol"` (no scipy) | - |
| python | `python -c pass`: the interpreter's own start, the floor under all | - |

`--bin DIR` runs another installation's `python` and `latency-lab` (a venv's bin/), e.g. one
installed from an older commit, for a before/after on the same machine and load.

Bytecode: a user's Python writes each module's compiled bytecode on its first import and reads
it afterwards. This sandbox sets PYTHONDONTWRITEBYTECODE=1, under which every process compiles
the project's own modules again (about 0.1 CPU-s of the offline search at load 14). So the
commands run as a user's do: PYTHONDONTWRITEBYTECODE unset, the bytecode in a temporary
PYTHONPYCACHEPREFIX (the checkout stays as it is), written by the warm-up run.
`--compile-every-run` keeps the sandbox's setting instead.

Usage: python benchmarks/everyday_benchmark.py [--repeats 7] [--bin DIR] [--tag T]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "results" / "cpu" / "latency-table-b0-search.csv"
LUT = ROOT / "results" / "cpu" / "lut-efficientnet-b0-to-b2.json"
SWEEP = ROOT / "results" / "cpu" / "efficientnet-b0_sweep_c.csv"
TARGETS = {"offline search": 1.0, "jumps": 1.0, "--help": 0.3}


def commands(bin_dir: Path) -> dict[str, list[str]]:
    exe, py = str(bin_dir / "latency-lab"), str(bin_dir / "python")
    return {
        "offline search": [exe, "search", "--budget-ms", "20", "--resolutions", "224:288:16",
                           "--accuracy", "synthetic", "--latency", f"table:{TABLE}",
                           "--latency", f"lut:{LUT}", "--out", "rbis-20ms"],
        "jumps": [exe, "jumps", str(SWEEP), "--out", "sweep_jumps"],
        "--help": [exe, "--help"],
        "import protocol": [py, "-c", "import latency_lab.measure.protocol"],
        "python": [py, "-c", "pass"],
    }


def run_once(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds user+sys, wall seconds) of one fresh process in an empty directory."""
    with tempfile.TemporaryDirectory(prefix="everyday-") as tmp:
        times = Path(tmp) / "time.txt"
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S", "-o", str(times), *cmd], cwd=tmp,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env=env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-500:]}")
        user, system = map(float, times.read_text().split()[-2:])
    return user + system, wall


def git_commit(bin_dir: Path) -> str:
    """The commit of the checkout the installation in `bin_dir` runs (editable installs)."""
    try:
        where = subprocess.run([str(bin_dir / "python"), "-c",
                                "import latency_lab, os; print(os.path.dirname(latency_lab.__file__))"],
                               capture_output=True, text=True, check=True, cwd="/").stdout.strip()
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--bin", type=Path, default=Path(sys.executable).parent,
                    help="bin/ of the installation to time (default: this interpreter's)")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--compile-every-run", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE as it is (this sandbox: every process "
                         "compiles the project's modules)")
    args = ap.parse_args()
    cmds = commands(args.bin.resolve())
    env = None
    pycache = tempfile.TemporaryDirectory(prefix="everyday-pycache-")
    if not args.compile_every_run:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache.name
    load_before = os.getloadavg()
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    wall: dict[str, list[float]] = {k: [] for k in cmds}
    for name, cmd in cmds.items():      # one unrecorded run each: disk caches warm for all
        run_once(cmd, env)
    for _ in range(args.repeats):
        for name, cmd in cmds.items():
            c, w = run_once(cmd, env)
            cpu[name].append(c)
            wall[name].append(w)
    load_after = os.getloadavg()
    rows = []
    for name in cmds:
        med = statistics.median(cpu[name])
        target = TARGETS.get(name)
        rows.append({"command": name, "cpu_s_median": round(med, 3),
                     "cpu_s_min": round(min(cpu[name]), 3), "cpu_s_max": round(max(cpu[name]), 3),
                     "wall_s_median": round(statistics.median(wall[name]), 3),
                     "runs": len(cpu[name]), "target_cpu_s": target,
                     "met": None if target is None else med < target,
                     "argv": " ".join(Path(cmds[name][0]).name if i == 0 else a
                                      for i, a in enumerate(cmds[name]))})
    meta = {"commit": git_commit(args.bin.resolve()), "bin": str(args.bin),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in load_after], "repeats": args.repeats,
            "bytecode": ("compiled in every process (PYTHONDONTWRITEBYTECODE as set)"
                         if args.compile_every_run else "cached after the warm-up run "
                         "(PYTHONDONTWRITEBYTECODE unset, PYTHONPYCACHEPREFIX temporary)"),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    tag = f" {args.tag}" if args.tag else ""
    lines = [f"# everyday commands: CPU seconds (user+sys) per whole process{tag}",
             "",
             f"commit {meta['commit']}, {meta['bin']}, Python {meta['python']}, {meta['machine']}; "
             f"{args.repeats} runs each, interleaved, after one warm-up run; load average "
             f"(1/5/15 min) {meta['load_before']} before, {meta['load_after']} after; "
             f"{meta['date']}; bytecode {meta['bytecode']}",
             "",
             "| command | CPU s median | min | max | wall s median | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['command']} | {r['cpu_s_median']:.3f} | {r['cpu_s_min']:.3f} | "
                     f"{r['cpu_s_max']:.3f} | {r['wall_s_median']:.3f} | "
                     f"{'< %g' % r['target_cpu_s'] if r['target_cpu_s'] else '-'} | "
                     f"{'-' if r['met'] is None else ('yes' if r['met'] else 'no')} |")
    lines += ["", "Commands:", ""] + [f"- {r['command']}: `{r['argv']}`" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"everyday_benchmark{'_' + args.tag if args.tag else ''}"
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows,
                                                       "cpu_s": cpu, "wall_s": wall},
                                                      indent=1) + "\n")


if __name__ == "__main__":
    main()
