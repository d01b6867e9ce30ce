"""CPU time of `latency-lab jumps` on a 61-point sweep, the whole process (issue 26's target,
moved to 22: under 1.0 s of user + system CPU).

Runs `LATENCY_LAB jumps results/cpu/efficientnet-b0_sweep_c.csv --out TMP` RUNS times under
`/usr/bin/time -f "%U %S"` (the plot included), interleaved with the same runs of a baseline
command when given (e.g. the main checkout's, to compare at the same load), and writes the
median, min and max with the load average before and after.

Usage: python benchmarks/jumps_cpu_time.py [--runs 9] [--baseline PATH/TO/latency-lab]
       [--out results/benchmarks/jumps_cpu_time.md]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "results" / "cpu" / "efficientnet-b0_sweep_c.csv"


def cpu_seconds(command: str, out: Path) -> float:
    """user + system seconds of one run (the process and its children)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%U %S", command, "jumps", str(SWEEP),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    user, system = proc.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system)


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--command", default=str(ROOT / ".venv" / "bin" / "latency-lab"))
    ap.add_argument("--baseline", help="another latency-lab to time beside it")
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/jumps_cpu_time.md")
    a = ap.parse_args()
    commands = {"this checkout": a.command}
    if a.baseline:
        commands["baseline"] = a.baseline
    times: dict[str, list[float]] = {k: [] for k in commands}
    before = load()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            for name, command in commands.items():
                times[name].append(cpu_seconds(command, Path(tmp) / f"{name}-{i}".replace(" ", "_")))
    after = load()
    lines = ["# CPU time of `latency-lab jumps` on a 61-point sweep (whole process, plot included)",
             "", f"Sweep: `{SWEEP.relative_to(ROOT)}`. {a.runs} runs each, interleaved; "
             f"1-minute load average {before} before, {after} after.", "",
             "| command | median s | min s | max s | runs (user + system s) |", "|---|---|---|---|---|"]
    for name, command in commands.items():
        t = times[name]
        lines.append(f"| {name} (`{command}`) | {statistics.median(t):.2f} | {min(t):.2f} | "
                     f"{max(t):.2f} | {' '.join(f'{v:.2f}' for v in t)} |")
    text = "\n".join(lines) + "\n"
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
