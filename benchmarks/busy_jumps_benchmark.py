"""Jump detectors on real busy sweeps (issue 22): how many of a quiet curve's steps of 6% or
more each detector finds, and how many jumps it reports away from the 16-px lattice, per CI
level, for the old detector ("model", the default before the lattice), the new one
("lattice", which reads the network) and plain ruptures Pelt.

Inputs, committed under results/cpu/busy/ (recorded with benchmarks/busy_sweep.sh: the sweep
beside a real CPU load, stress-ng and/or the other jobs of this shared host):
- `efficientnet-b0_busy_TAG.csv`: the sweep as its command wrote it;
- `efficientnet-b0_busy_TAG_samples.csv.gz`: its raw samples (resolution, round, t_s,
  latency_ms), exported from the sweep's store with `--export STORE OUT`;
- `efficientnet-b0_busy_TAG_load.txt`: stress-ng's arguments and /proc/loadavg every 15 s.

Each recording measured with full rounds gives curves at several CI levels: its first k rounds
of every point (k = 5, 8, 12, 16, ..., all), drift-corrected and summarised exactly as the
protocol does (`measure.drift.drift_factors` over those visits, `measure.api.Measurement`'s
statistics) -- what the sweep would have written had its cap come after k rounds. A sweep
measured adaptively (`latency-lab sweep`'s default) counts once, as written.

Truth: the quiet sweeps (`--truth`, default the committed `results/cpu/efficientnet-b0_sweep_*`):
the breaks where the lattice detector finds a step of >= 6% in most of them. A match is the
same break or one grid step off (4 px); a jump "off the lattice" is one whose last resolution
before it is not a multiple of 16.

Usage: PYTHONPATH=. python benchmarks/busy_jumps_benchmark.py [--truth GLOB] [--out PREFIX]
       PYTHONPATH=. python benchmarks/busy_jumps_benchmark.py --export STORE OUT.csv.gz
Writes PREFIX.md, PREFIX.csv (one row per curve and detector) and PREFIX.png.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from jumps_benchmark import plain_pelt  # noqa: E402  (a sibling script)

from latency_lab.measure.api import DeviceInfo, Measurement  # noqa: E402
from latency_lab.measure.drift import drift_factors  # noqa: E402
from latency_lab.network.presets import load_network  # noqa: E402
from latency_lab.sweeps import jumps as J  # noqa: E402
from latency_lab.sweeps.floor import detect_best, floor_ms  # noqa: E402

BUSY = ROOT / "results" / "cpu" / "busy"
PREFIXES = (5, 8, 12, 16, 24, 32)
BIG_PCT = 6.0
CI_BINS = [(0, 2), (2, 3), (3, 5), (5, 8), (8, 12), (12, 1e9)]
# new: the jump report's default (lattice; on a busy sweep, on the less noisy of the medians
# and the floor);
# lattice-median: the lattice on the medians and their CIs; model: the old default with CIs;
# ruptures: plain Pelt on the medians (linear cost, 3 ln(n) sigma^2, up-breaks)
DETECTORS = ("new", "lattice-median", "model", "ruptures")


# -- export ----------------------------------------------------------------------------------

def export(store: Path, out: Path) -> int:
    """The raw samples of the (one) sweep in `store`, as resolution, round, t_s, latency_ms."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    rows = con.execute("select m.resolution, s.round, s.taken_at, s.latency_ms from samples s "
                       "join measurements m on m.id = s.measurement_id "
                       "order by s.taken_at, m.resolution").fetchall()
    con.close()
    t0 = min(r[2] for r in rows)
    with gzip.open(out, "wt") as f:
        f.write("resolution,round,t_s,latency_ms\n")
        for res, rnd, t, lat in rows:
            f.write(f"{res},{rnd},{t - t0:.3f},{lat:.4f}\n")
    return len(rows)


# -- curves ----------------------------------------------------------------------------------

def curve_from_samples(samples: pd.DataFrame, rounds: int | None = None) -> pd.DataFrame:
    """The sweep's CSV columns the detectors read, from the samples of each point's first
    `rounds` rounds (all: None), corrected for the drift those visits show."""
    s = samples if rounds is None else samples[samples["round"] < rounds]
    visits = s.groupby(["resolution", "round"], sort=False).agg(
        t=("t_s", "first"), med=("latency_ms", "median")).reset_index()
    visits["f"] = drift_factors(visits["resolution"].to_numpy(), visits["t"].to_numpy(),
                                visits["med"].to_numpy())
    s = s.merge(visits[["resolution", "round", "f"]], on=["resolution", "round"])
    info = DeviceInfo(name="cpu", hardware="recorded", runtime="litert", runtime_version="")
    rows = []
    for res, g in s.groupby("resolution"):
        m = Measurement(info, "efficientnet-b0", "", int(res), tuple(g["latency_ms"]),
                        tuple(int(v) for v in g["round"]), drift=tuple(g["f"]))
        st = m.stats
        rows.append({"resolution": int(res), "latency_ms": st.median_ms,
                     "ci_low_ms": st.ci_low_ms, "ci_high_ms": st.ci_high_ms,
                     "n_rounds": m.n_rounds, "floor_ms": floor_ms(g["latency_ms"])})
    return pd.DataFrame(rows)


def busy_curves() -> list[dict]:
    """Every busy curve: (recording, rounds used, the curve, median CI half-width, load)."""
    out = []
    for csv in sorted(BUSY.glob("efficientnet-b0_busy_*.csv")):
        tag = csv.stem.removeprefix("efficientnet-b0_busy_")
        written = pd.read_csv(csv)
        load = load_range(BUSY / f"{csv.stem}_load.txt")
        samples_file = BUSY / f"{csv.stem}_samples.csv.gz"
        adaptive = "decided" in set(written["stop_reason"].astype(str)) or \
            written["n_rounds"].nunique() > 2
        if adaptive or not samples_file.is_file():
            out.append(dict(tag=tag, rounds="as written", frame=written, load=load))
            continue
        samples = pd.read_csv(samples_file)
        full = int(written["n_rounds"].min())
        for k in [p for p in PREFIXES if p < full] + [None]:
            out.append(dict(tag=tag, rounds=k or f"all ({full})",
                            frame=curve_from_samples(samples, k), load=load))
    for c in out:
        f = c["frame"]
        c["ci_pct"] = float(np.median((f["ci_high_ms"] - f["ci_low_ms"]) / 2 / f["latency_ms"])
                            * 100)
    return out


def load_range(path: Path) -> str:
    """'min-max' of the 1-minute load average over a recording's log ('' without one)."""
    if not path.is_file():
        return ""
    vals = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and ":" in parts[0] and not line.startswith(("start", "end")):
            try:
                vals.append(float(parts[1]))
            except ValueError:
                pass
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else ""


# -- detectors and scoring -------------------------------------------------------------------

def detect(frame: pd.DataFrame, detector: str, network) -> tuple[list[int], float]:
    """Resolutions before each upward jump, and the CPU seconds it took."""
    t0 = time.process_time()
    frame = frame[frame["latency_ms"].notna()]
    if detector == "ruptures":
        ks = plain_pelt(frame)
        r = frame["resolution"].to_numpy(int)
        found = [int(r[k]) for k in ks]
    else:
        if detector == "new":
            res = detect_best(frame, "auto", network=network)[0]
        elif detector == "lattice-median":
            res = J.detect(frame, method="lattice", network=network)
        else:
            res = J.detect(frame, method="model")
        found = [int(v) for v in res.jumps["resolution_before"]]
    return found, time.process_time() - t0


def truth_steps(paths: list[str], network) -> list[int]:
    """Breaks where the lattice detector finds a step >= BIG_PCT in most quiet sweeps."""
    votes: dict[int, int] = {}
    for p in paths:
        res = J.detect(pd.read_csv(p), network=network)
        for row in res.jumps.itertuples():
            if row.jump_pct >= BIG_PCT:
                votes[int(row.resolution_before)] = votes.get(int(row.resolution_before), 0) + 1
    return sorted(b for b, v in votes.items() if v > len(paths) / 2)


def score(found: list[int], truth: list[int], step: int = 4) -> tuple[int, int]:
    """(true steps found within one grid step, jumps off the 16-px lattice)."""
    hits = sum(any(abs(f - t) <= step for f in found) for t in truth)
    return hits, sum(1 for f in found if f % 16)


def ci_bin(pct: float) -> str:
    for lo, hi in CI_BINS:
        if lo <= pct < hi:
            return f"{lo}-{hi:g}%" if hi < 1e9 else f">= {lo}%"
    return "?"


def run(truth_glob: str, out: Path) -> None:
    b0 = load_network("efficientnet-b0")
    quiet = sorted(glob.glob(str(ROOT / truth_glob)))
    truth = truth_steps(quiet, b0)
    print(f"truth: steps >= {BIG_PCT:g}% in most of {len(quiet)} quiet sweeps: {truth}")
    curves = [dict(tag=Path(p).stem.removeprefix("efficientnet-b0_"), rounds="as written",
                   frame=pd.read_csv(p), load="quiet") for p in quiet]
    for c in curves:
        f = c["frame"]
        c["ci_pct"] = float(np.median((f["ci_high_ms"] - f["ci_low_ms"]) / 2 / f["latency_ms"])
                            * 100)
    curves += busy_curves()
    rows = []
    for c in curves:
        for det in DETECTORS:
            found, cpu = detect(c["frame"], det, b0)
            hits, off = score(found, truth)
            rows.append(dict(curve=c["tag"], rounds=c["rounds"], load=c["load"],
                             ci_pct=round(c["ci_pct"], 2), ci_level=ci_bin(c["ci_pct"]),
                             detector=det, found=hits, of=len(truth), off_lattice=off,
                             jumps=" ".join(map(str, found)), cpu_s=round(cpu, 3)))
        print(c["tag"], c["rounds"], f"CI {c['ci_pct']:.1f}%",
              {r["detector"]: (r["found"], r["off_lattice"]) for r in rows[-len(DETECTORS):]})
    table = pd.DataFrame(rows)
    table.to_csv(out.with_suffix(".csv"), index=False)
    write_markdown(table, truth, quiet, out.with_suffix(".md"))
    plot(table, curves, out.with_suffix(".png"))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per CI level and detector: curves, mean recall, curves with >= 5 of 7, mean and max
    off-lattice jumps, curves with at most 1."""
    busy = table[table["load"] != "quiet"].copy()
    busy["ok_recall"] = busy["found"] >= 5
    busy["ok_off"] = busy["off_lattice"] <= 1
    g = busy.groupby(["ci_level", "detector"])
    out = g.agg(curves=("found", "size"), found_mean=("found", "mean"),
                recall_ge5=("ok_recall", "sum"), off_mean=("off_lattice", "mean"),
                off_max=("off_lattice", "max"), off_le1=("ok_off", "sum")).reset_index()
    order = {f"{lo}-{hi:g}%" if hi < 1e9 else f">= {lo}%": i for i, (lo, hi) in enumerate(CI_BINS)}
    out["o"] = out["ci_level"].map(order)
    return out.sort_values(["o", "detector"]).drop(columns="o")


def write_markdown(table, truth, quiet, path: Path) -> None:
    s = summary(table)
    lines = [f"# Jump detectors on real busy sweeps ({time.strftime('%Y-%m-%d')})", "",
             f"Truth: the steps of >= {BIG_PCT:g}% in most of the {len(quiet)} quiet sweeps "
             f"({', '.join(Path(q).name for q in quiet)}): after {', '.join(map(str, truth))} px.",
             "", "Machines: the quiet sweeps ran on the AMD EPYC host of results/cpu/ (2 logical "
             "CPUs); the busy ones on this session's host, an Intel Xeon with AVX-512 (2 logical "
             "CPUs, KVM), beside its other jobs and stress-ng (load per curve below). The steps "
             "are at the same places on both: the best busy curves find all 7, and nothing off "
             "the 16-px lattice.", "",
             "Quiet sweeps (" + ", ".join(
                 f"{d}: {int(g['found'].sum())}/{int(g['of'].sum())} found, "
                 f"{int(g['off_lattice'].sum())} off the lattice"
                 for d, g in table[table["load"] == "quiet"].groupby("detector", sort=False))
             + ").", "", "## Busy curves, per CI level (median CI half-width)", "",
             "| CI level | detector | curves | found (mean of " f"{len(truth)}) | curves with >= 5 "
             "| off-lattice jumps (mean, max) | curves with <= 1 off |",
             "|---|---|---|---|---|---|---|"]
    for r in s.itertuples():
        lines.append(f"| {r.ci_level} | {r.detector} | {r.curves} | {r.found_mean:.1f} | "
                     f"{r.recall_ge5} | {r.off_mean:.1f}, {r.off_max} | {r.off_le1} |")
    lines += ["", "## Every curve", "", "| curve | rounds | load | CI % | detector | found | "
              "off lattice | jumps (last resolution before) |", "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.curve} | {r.rounds} | {r.load} | {r.ci_pct:.2f} | {r.detector} | "
                     f"{r.found}/{r.of} | {r.off_lattice} | {r.jumps} |")
    path.write_text("\n".join(lines) + "\n")


def plot(table: pd.DataFrame, curves: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    colours = {"new": "tab:green", "lattice-median": "tab:olive", "model": "tab:blue",
               "ruptures": "tab:gray"}
    markers = {"new": "o", "lattice-median": "s", "model": "^", "ruptures": "x"}
    # each detector a little above or below the others, so that equal counts stay visible
    shift = {d: 0.12 * (i - (len(DETECTORS) - 1) / 2) for i, d in enumerate(DETECTORS)}
    for det in DETECTORS[::-1]:
        t = table[(table["detector"] == det)]
        kw = dict(color=colours[det], marker=markers[det], ls="none", alpha=0.8, label=det,
                  ms=7 if det == "new" else 5)
        axes[0].plot(t["ci_pct"], t["found"] + shift[det], **kw)
        axes[1].plot(t["ci_pct"], t["off_lattice"] + shift[det], **kw)
    of = int(table["of"].iloc[0])
    axes[0].axhline(5, color="tab:red", ls="--", lw=1, label="target: >= 5 of 7")
    axes[0].set_ylim(-0.3, of + 0.3)
    axes[1].axhline(1, color="tab:red", ls="--", lw=1, label="target: <= 1")
    for ax, what in zip(axes, (f"quiet curve's steps >= {BIG_PCT:g}% found (of {of})",
                               "jumps away from the 16-px lattice")):
        ax.set_xscale("log")
        ax.set_xlabel("median CI half-width of the curve (%)")
        ax.set_ylabel(what)
        ax.axvspan(3, 5, color="tab:orange", alpha=0.1, label="the target's CI level (3-5%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("EfficientNet-B0 on the host CPU: real busy sweeps and their first k rounds",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", default="results/cpu/efficientnet-b0_sweep_*.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/busy_jumps_benchmark")
    ap.add_argument("--export", nargs=2, metavar=("STORE", "OUT"), type=Path)
    a = ap.parse_args()
    if a.export:
        print(f"{export(*a.export)} samples written to {a.export[1]}")
        return
    run(a.truth, a.out)


if __name__ == "__main__":
    main()
