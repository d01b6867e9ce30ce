"""CLI command `sweep-plan` (registered in latency_lab/cli/app.py): a plan file's sweeps, across devices."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latency_lab.errors import UserError
from latency_lab.cli.options import Executor, Jumps, Remeasure, StorePath


def sweep_plan_command(
    plan: Path = typer.Argument(..., help="Plan file (TOML): networks, resolutions, devices."),
    executor: Executor = "local",
    out: Optional[Path] = typer.Option(None, help="CSV directory, OUT/DEVICE/NETWORK.csv "
                                                  "(default: the plan's `out`, else "
                                                  "PLAN_sweeps/ next to the plan)."),
    store_path: StorePath = None,
    remeasure: Remeasure = False,
    jumps: Jumps = True,
) -> None:
    """Run a plan's sweeps (networks x devices x resolution ranges) across its devices."""
    from latency_lab.cli.jumps import report_jumps
    from latency_lab.cli.options import make_console
    from latency_lab.scaleout.executors import open_executor, parse_executor
    from latency_lab.paths import default_store_path
    from latency_lab.measure.store import Store
    from latency_lab.scaleout.sweep_plan import (check_devices, check_plan, load_plan, plan_jobs,
                                                 run_plan)

    spec = parse_executor(executor)
    p = load_plan(plan)
    out = out or p.out or plan.with_name(plan.stem + "_sweeps")
    check_plan(p, out)          # drivers, options, the CSV folder: before the first sweep
    checked = check_devices(p, open_here=not spec.is_ray)   # each device opens: before any sweep
    store = Store(store_path or default_store_path())
    console = make_console()
    n = len(plan_jobs(p))
    console.print(f"plan {plan}: {len(p.networks)} network(s) x {len(p.devices)} device(s), "
                  f"{len(p.resolutions)} resolutions {p.resolutions[0]}..{p.resolutions[-1]}: "
                  f"{n} sweeps on {spec.text}; store {store.path}")
    for line in checked:
        console.print(f"  device {line}", highlight=False)

    def report(o) -> None:
        if o.error:
            console.print(f"[red]failed[/] {o.job.name}: {o.error}")
            return
        samples = sum(len(m.samples_ms) for m in o.measurements)
        merged = f", {o.merged} measurement(s) merged from the device's store" if o.merged else ""
        console.print(f"done {o.job.name} on {o.host or 'this host'}: {len(o.measurements)} "
                      f"points, {samples} samples -> {o.csv}{merged}")
        if jumps:
            from latency_lab.sweeps.run import to_frame

            report_jumps(console, to_frame(o.measurements),
                          o.csv.with_name(o.csv.stem + "_jumps"))

    with store, open_executor(spec) as ex:
        outcomes = run_plan(p, ex, store, out, remeasure, on_done=report)
    failed = [o for o in outcomes if o.error]
    if failed:
        raise UserError(f"{len(failed)} of {len(outcomes)} sweeps failed (first: "
                        f"{failed[0].job.name}: {failed[0].error}); the others are in {out}")
    console.print(f"all {len(outcomes)} sweeps done; CSVs in {out}/")
