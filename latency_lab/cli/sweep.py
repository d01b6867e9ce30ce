"""CLI commands `devices` and `sweep` (registered in cli/app.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from latency_lab.cli.jumps import report_jumps
from latency_lab.cli.options import (DEFAULT_NETWORK, Affinity, CiTarget, DeviceName,
                                     DeviceOptions, Jumps, MaxRounds, MinRounds, NetworkName,
                                     Progress, Remeasure, Resolutions, RunsPerVisit, Serial,
                                     StorePath, Threads, TimeCap, device_options, make_console,
                                     protocol)
from latency_lab.measure.settings import NETWORK_PROTOCOL as P


def devices_command() -> None:
    """List the device drivers that can be named with --device."""
    from latency_lab.measure.api import device_names

    for name in device_names():
        print(name)


def sweep(
    device: DeviceName = "cpu",
    network: NetworkName = DEFAULT_NETWORK,
    resolutions: Resolutions = "160:400:4",
    out: Annotated[Path, typer.Option(help="CSV to write, one row per resolution.")]
    = Path("sweep.csv"),
    threads: Threads = None,
    affinity: Affinity = None,
    serial: Serial = None,
    device_option: DeviceOptions = [],  # noqa: B006  (typer copies it)
    store_path: StorePath = None,
    remeasure: Remeasure = False,
    ci_target_pct: CiTarget = P.ci_target_pct,
    min_rounds: MinRounds = P.min_rounds,
    max_rounds: MaxRounds = P.max_rounds,
    runs_per_visit: RunsPerVisit = P.runs_per_visit,
    time_cap_s: TimeCap = P.time_cap_s,
    jumps: Jumps = True,
    jumps_out: Annotated[Optional[Path], typer.Option(help="Directory of the jump report "
                                                           "(default: next to --out, "
                                                           "OUT_jumps/).")] = None,
    adaptive: Annotated[bool, typer.Option(
        help="After 5 rounds of every point, measure only beside the steps whose call could "
             "still change the candidates, and stop when none is left (stop reason decided); "
             "--no-adaptive measures every point to its CI target (docs/jumps.md).")] = True,
) -> None:
    """Sweep a network's input resolution on a device and write the latency curve as CSV.

    At the end, the jump detector writes jumps.csv, drops.csv, candidates.csv and sweep.png
    (see `latency-lab jumps`) unless --no-jumps. With --adaptive (the default, with jumps) the
    sweep stops when the candidate decision is settled, or at the cap, and says which.
    """
    from latency_lab.fileio import check_output_dir, check_output_file
    from latency_lab.measure.api import get_device
    from latency_lab.paths import default_store_path
    from latency_lab.network.presets import load_network
    from latency_lab.measure.store import Store
    from latency_lab.measure.protocol import Interrupted
    from latency_lab.sweeps.run import (launch_notes, parse_resolutions, run_sweep, sigterm_interrupts,
                                   to_frame, write_csv)

    spec = load_network(network)
    grid = parse_resolutions(resolutions)
    check_output_file(out, "--out")
    jumps_dir = jumps_out or out.with_name(out.stem + "_jumps")
    if jumps:
        check_output_dir(jumps_dir, "jump report directory")
    proto = protocol(P, ci_target_pct, min_rounds, max_rounds, runs_per_visit, time_cap_s)
    store = Store(store_path or default_store_path())
    dev = get_device(device, **device_options(device_option, threads=threads,
                                               affinity=affinity, serial=serial))
    console = make_console()
    info = dev.info()
    console.print(f"[bold]{spec.name}[/] ({spec.fingerprint}) on {info.name}: {info.hardware}, "
                  f"{info.runtime} {info.runtime_version}"
                  f"{f', {info.threads} thread(s)' if info.threads else ''}"
                  f"{f', batch {info.batch_size}' if info.batch_size > 1 else ''}; "
                  f"{len(grid)} resolutions {grid[0]}..{grid[-1]}; store {store.path}")
    planner = None
    if adaptive and jumps:
        from latency_lab.sweeps.adaptive import DecisionPlanner

        planner = DecisionPlanner(spec)
    with dev, Progress(console) as bar, sigterm_interrupts():
        try:
            frame = run_sweep(dev, spec, grid, store, proto, remeasure, progress=bar,
                              planner=planner)
        except Interrupted as exc:   # what was measured still reaches the CSV
            bar.__exit__()
            measured = sum(1 for m in exc.measurements if m.samples_ms)
            if not measured:     # stopped before a sample: an old CSV is not replaced by none
                console.print(f"interrupted: nothing measured yet; {out} not written")
                raise
            frame = to_frame(exc.measurements)
            write_csv(frame, out)
            console.print(f"interrupted: wrote {out} with the {measured} of {len(frame)} points "
                          f"measured so far (stop reason interrupted or as they stopped); run "
                          f"again to resume")
            raise
    write_csv(frame, out)
    last = bar.last
    if last is not None and (last.reused or last.resumed):
        console.print(f"from the store: {last.reused} finished point(s) reused as they were, "
                      f"{last.resumed} measured further (--remeasure measures all anew)")
    reused = frame[frame["reused"].astype(bool)] if "reused" in frame.columns else frame[:0]
    if len(reused):
        console.print(f"reused points (they met the protocol): measured "
                      f"{reused['measured_at'].min()} to {reused['measured_at'].max()}, load "
                      f"{reused['load_min'].min():.1f}-{reused['load_max'].max():.1f}, "
                      f"{int(reused['n_rounds'].min())}-{int(reused['n_rounds'].max())} rounds, "
                      f"CI +-{reused['ci_halfwidth_pct'].median():.2f}% median (CSV columns "
                      "measured_at, load_min, load_max, reused)", markup=False)
    console.print(f"wrote {out}: {len(frame)} points, {int(frame['n_samples'].sum())} samples, "
                  f"median CI half-width {frame['ci_halfwidth_pct'].median():.2f}%; "
                  f"stopped {stop_words(frame['stop_reason'])}", highlight=False)
    setup = frame["setup_s"].sum() if "setup_s" in frame.columns else 0.0
    if setup >= 1.0:
        console.print(f"per-point set-up (autotuning, warm-up, graph capture of new shapes): "
                      f"{setup:.0f} s in all, up to {frame['setup_s'].max():.1f} s a point "
                      f"(column setup_s)")
    unreached = int((frame["n_samples"] == 0).sum())
    if unreached:
        console.print(f"the time cap ({time_cap_s:g} s) came before {unreached} point(s) were "
                      f"measured (rows without samples); run again to resume them")
    for note in launch_notes(frame):
        console.print(note)
    if planner is not None:
        console.print(decision_line(frame, planner, last), highlight=False)
    if jumps:
        report_jumps(console, frame, jumps_dir, spec)
    advice = ci_advice(frame, ci_target_pct, time_cap_s, len(grid), jumps, max_rounds)
    if advice:
        console.print(advice, highlight=False)


def decision_line(frame, planner, last) -> str:
    """Whether the sweep stopped on a settled candidate decision or at the cap, and why."""
    reasons = set(frame["stop_reason"].astype(str))
    d = planner.last
    took = f" after {last.elapsed_s / 60:.1f} min" if last else ""
    if "decided" in reasons and d is not None:
        return (f"candidate decision {d.why}{took} ({planner.decided_at_round} rounds of "
                f"every point, {planner.partial_rounds} partial round(s) beside the steps in "
                f"doubt): the sweep stopped there (stop reason decided)")
    what = d.why if d is not None else (f"not settled: fewer than {planner.full_rounds} "
                                        f"rounds of every point")
    if "time_cap" in reasons:
        return f"the time cap came before the candidate decision settled{took}: {what}"
    if "max_rounds" in reasons:
        return f"the rounds ran out (--max-rounds) before the candidate decision settled: {what}"
    return "every point reached its CI target before the candidate decision was needed"


STOP_WORDS = {"ci_target": "at the CI target", "time_cap": "by the time cap",
              "max_rounds": "at max rounds", "interrupted": "interrupted",
              "replayed": "replayed", "predicted": "predicted",
              "decided": "on a settled candidate decision"}


def stop_words(reasons) -> str:
    """'48 at the CI target, 13 by the time cap' from a column (or list) of stop reasons."""
    from collections import Counter

    counts = Counter(str(r) for r in reasons)
    return ", ".join(f"{n} {STOP_WORDS.get(r, r)}" for r, n in counts.most_common())


def ci_advice(frame, target_pct: float, time_cap_s: float, n_points: int,
              jumps: bool = True, max_rounds: int = 100) -> str:
    """What to do when points stopped short of the CI target ('' when all reached it); the
    points stopped on a settled candidate decision missed it on purpose and are left out."""
    missed = frame[(frame["ci_halfwidth_pct"] > target_pct) & (frame["stop_reason"] != "decided")]
    if not len(missed):
        return ""
    why = set(missed["stop_reason"])
    coarser = max(2, n_points // 2)
    todo = []
    if "time_cap" in why:
        todo.append("run the same command again (it goes on measuring the points the cap "
                    "stopped, from the store)")
    todo.append("pin the process to a core other jobs use less (--affinity 1)")
    if "time_cap" in why:
        todo.append(f"measure fewer points (a coarser grid, e.g. {coarser} instead of "
                    f"{n_points}, gives each point about twice the rounds)")
        todo.append(f"allow more time (--time-cap-s {int(time_cap_s * 2)})")
    if "max_rounds" in why:
        todo.append(f"allow more rounds (--max-rounds {2 * max_rounds}) and --remeasure")
    return (f"CI target +-{target_pct:g}% missed at {len(missed)} of {len(frame)} points (their "
            f"median +-{missed['ci_halfwidth_pct'].median():.2f}%; stopped "
            f"{stop_words(missed['stop_reason'])})"
            + ("; the jump test above used these wider CIs" if jumps else "")
            + ". To narrow them: " + "; ".join(todo) + ".")
