"""The `latency-lab jumps` command: a sweep CSV -> jumps.csv, drops.csv, candidates.csv, sweep.png.

Thin over `latency_lab.sweeps.report.analyze_sweep`; pandas and matplotlib are imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latency_lab.cli.options import BudgetMs, MaxCandidates, NetworkName, Stages, StorePath

from latency_lab.errors import UserError


def jumps_command(
    sweep_csv: Path = typer.Argument(..., help="Sweep CSV with resolution and latency_ms "
                                               "(ci_low_ms/ci_high_ms used when present)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for jumps.csv, drops.csv, "
                                                           "candidates.csv and sweep.png (created;"
                                                           " default SWEEP_jumps/ in the working "
                                                           "directory)."),
    neighbours: int = typer.Option(0, min=0, help="Also propose this many grid neighbours "
                                                 "on each side of each before-jump resolution."),
    budget_ms: BudgetMs = None,
    max_candidates: MaxCandidates = 4,
    network: NetworkName = None,
    stages: Stages = None,
    min_latency_ms: Optional[float] = typer.Option(None, help="Drop candidates under this."),
    min_jump_pct: Optional[float] = typer.Option(None, help="Only jumps of at least this many "
                                                            "percent give candidates (all are "
                                                            "still listed in jumps.csv)."),
    z_min: Optional[float] = typer.Option(None, help="Step needed, in standard errors (default "
                                                     "per detector: lattice 2.5 at a place, 5 "
                                                     "elsewhere; model and pelt 3.5)."),
    no_ci: bool = typer.Option(False, "--no-ci", help="Ignore CI columns; estimate noise from "
                                                      "the curve."),
    detector: str = typer.Option("auto", "--detector", help="auto (lattice when the swept "
                                 "network is known, else model with CIs, else pelt), lattice "
                                 "(trend + steps where the network's feature maps grow), model "
                                 "(sparse model of the whole curve) or pelt (Pelt + local step "
                                 "tests); see docs/jumps.md."),
    curve: str = typer.Option("auto", "--curve", help="auto (the floor when the medians' CIs "
                              "say the machine was busy, over +-2%), median, or floor (the "
                              "10th percentile of each point's raw samples, column floor_ms); "
                              "see docs/jumps.md."),
    store_path: StorePath = None,
    no_plot: bool = typer.Option(False, "--no-plot", help="Do not draw sweep.png."),
) -> None:
    """Find latency jumps in a resolution sweep and list the candidate resolutions.

    With --budget-ms, a candidate must leave room for one scaling step of the swept network
    (--network, default: the CSV's network column when it names a preset); --store gives CIs
    from the store's raw samples to rows that lack them."""
    import pandas as pd

    from latency_lab.fileio import check_output_dir
    from latency_lab.sweeps.report import analyze_sweep

    if not sweep_csv.is_file():
        raise UserError(f"no such file: {sweep_csv}")
    out = out or Path(f"{sweep_csv.stem}_jumps")
    check_output_dir(out, "--out")
    try:
        frame = pd.read_csv(sweep_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {sweep_csv} as CSV: {str(exc).splitlines()[0]}") from None
    if not no_ci:
        frame = _cis_from_store(frame, store_path)
    spec = _swept_network(frame, network, quiet=budget_ms is None)
    step_cost = _step_cost(spec, stages) if budget_ms is not None else None
    from datetime import date

    from latency_lab.sweeps.report import sweep_title

    when = date.fromtimestamp(sweep_csv.stat().st_mtime).isoformat()   # the CSV's, not today
    try:
        analysis = analyze_sweep(frame, out, neighbours=neighbours, budget_ms=budget_ms,
                                 title=sweep_title(frame, when),
                                 min_latency_ms=min_latency_ms, min_jump_pct=min_jump_pct,
                                 max_candidates=max_candidates, step_cost=step_cost,
                                 plot=not no_plot, z_min=z_min,
                                 use_ci=not no_ci, method=detector, network=spec,
                                 curve=curve)
    except PermissionError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror}") from None
    print(summary(analysis))


def _swept_network(frame, network: Optional[str], quiet: bool):
    """The swept network: --network, or the CSV's network column when it names one preset; None
    with a note when neither (then no lattice detector, and only the baseline is checked
    against a budget)."""
    from latency_lab.network.presets import load_network, names

    if network is None and "network" in frame.columns:
        named = {str(v) for v in frame["network"].dropna()}
        if len(named) == 1 and next(iter(named)) in names():
            network = next(iter(named))
    if network is None:
        print("note: the swept network is unknown (no --network, no preset in the CSV's network"
              " column): no lattice detector"
              + ("" if quiet else "; only the baseline latency is checked against the budget"))
        return None
    spec = load_network(network)
    if "fingerprint" in frame.columns and spec.fingerprint not in set(frame["fingerprint"].astype(str)):
        raise UserError(f"--network {network} (fingerprint {spec.fingerprint}) is not the network "
                        f"of this sweep (fingerprint {frame['fingerprint'].iloc[0]})")
    return spec


def _step_cost(spec, stages: Optional[str]):
    """The cheapest-step estimate of the swept network (`latency_lab.sweeps.candidates`), or None
    when the network is not known."""
    from latency_lab.sweeps.candidates import network_step_cost
    from latency_lab.cli.options import parse_int_list
    from latency_lab.search.rbis import check_stages

    if spec is None:
        return None
    chosen = check_stages(spec, parse_int_list(stages, "stages") if stages else None)
    return network_step_cost(spec, chosen)


def _cis_from_store(frame, store_path: Optional[Path]):
    """Rows without CIs get them from the store's raw samples (latency_lab.sweeps.run)."""
    from latency_lab.paths import default_store_path
    from latency_lab.measure.store import Store
    from latency_lab.sweeps.run import IDENTITY_COLUMNS, cis_from_store

    has_ci = {"ci_low_ms", "ci_high_ms"} <= set(frame.columns) and \
        frame[["ci_low_ms", "ci_high_ms"]].notna().all().all()
    if store_path is not None:   # named: opened and checked even when its CIs are not needed
        if not store_path.is_file():
            raise UserError(f"no such store: {store_path}")
        Store(store_path).close()
    if has_ci or any(c not in frame.columns for c in IDENTITY_COLUMNS):
        if store_path is not None:
            print(f"note: --store {store_path} not read: every row of the CSV has its CI"
                  if has_ci else f"note: --store {store_path} not read: the CSV lacks "
                  f"{', '.join(c for c in IDENTITY_COLUMNS if c not in frame.columns)}")
        return frame

    path = store_path or default_store_path()
    if not path.is_file():
        if store_path is not None:
            raise UserError(f"no such store: {store_path}")
        return frame
    with Store(path) as store:
        frame, filled = cis_from_store(frame, store)
    print(f"CIs of {filled} of {len(frame)} rows computed from raw samples in {path}")
    return frame


def summary(analysis) -> str:
    res = analysis.result
    lines = [f"{res.curve.n} points {int(res.curve.resolution[0])}..{int(res.curve.resolution[-1])}"
             f"; noise: {res.noise_source}; method: {res.method}"]
    lines += [f"note: {n}" for n in res.notes]
    if analysis.verdict:
        lines.append(analysis.verdict)
    for row in analysis.jumps.itertuples():
        lines.append(f"jump  {row.resolution_before} -> {row.resolution_after}: "
                     f"{row.jump_ms:+.2f} ms ({row.jump_pct:+.1f}%), z {row.z:.1f}")
    for row in analysis.drops.itertuples():
        lines.append(f"drop  {row.resolution_before} -> {row.resolution_after}: "
                     f"{row.jump_ms:+.2f} ms ({row.jump_pct:+.1f}%), z {row.z:.1f}")
    if not len(analysis.jumps) and not analysis.verdict:
        lines.append("no upward jumps found")
    cands = analysis.candidates
    kept = ", ".join(str(r) for r in cands.loc[cands["kept"], "resolution"])
    lines.append(f"candidates: {kept or 'none'}"
                 + (f" ({(~cands['kept']).sum()} dropped, see candidates.csv)"
                    if (~cands["kept"]).any() else ""))
    lines.append("wrote " + ", ".join(str(p) for p in analysis.files.values()))
    return "\n".join(lines)


def report_jumps(console, frame, out_dir: Path, network=None) -> None:
    from latency_lab.errors import JumpInputError
    from latency_lab.sweeps.report import analyze_sweep

    try:   # points never reached are left out
        analysis = analyze_sweep(frame, out_dir, network=network)
    except JumpInputError as exc:  # e.g. too few points: the sweep itself is fine and written
        console.print(f"no jump analysis: {exc}")
        return
    if analysis.verdict:
        console.print(f"jump report in {out_dir}/: {analysis.verdict}", highlight=False)
        return
    before = [int(r) for r in analysis.result.jumps["resolution_before"]]
    from latency_lab.sweeps.candidates import kept

    picks = kept(analysis.candidates)
    what = (f"candidate resolutions {picks} (the largest jumps; `latency-lab jumps "
            f"--budget-ms T` keeps those with room under a budget)" if picks
            else "no candidate resolutions")
    console.print(f"jumps after {before or 'none'}; {what}; report in {out_dir}/")
