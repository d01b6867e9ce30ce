"""`latency-lab table ...` and `latency-lab lut ...`: thin commands over tables/latency_table.py
and tables/lut*.py (the LUT, its file, its recording).

table export|import|show move latencies between the SQLite store and table files;
lut record measures a per-block lookup table on a device, lut predict|show read one. Only
`lut record` imports TensorFlow (through the device); the others stay light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from latency_lab.cli.options import (DEFAULT_NETWORK, Affinity, AsJson, CiTarget, DeviceFilter,
                                     DeviceName, DeviceOptions, LutFile, MaxRounds, MinRounds,
                                     NetworkFilter, NetworkName, Resolution, Resolutions, Rows,
                                     Remeasure, RunsPerVisit, Seed,
                                     StorePath, Threads, TimeCap, protocol)
from latency_lab.measure.settings import BLOCK_PROTOCOL as B

from latency_lab.errors import UserError

table_app = typer.Typer(no_args_is_help=True, help="Recorded latency tables (CSV/Parquet).")
lut_app = typer.Typer(no_args_is_help=True, help="Per-block lookup tables that predict latency.")

def _store(path: Optional[Path]):
    from latency_lab.paths import default_store_path
    from latency_lab.measure.store import Store

    return Store(path or default_store_path())


def _network_filter(network: Optional[str]) -> Optional[str]:
    """A preset name or JSON file becomes its fingerprint; anything else is a name/fingerprint."""
    if network is None:
        return None
    from latency_lab.network.presets import PRESETS, load_network

    if network in PRESETS or ".json" in network:
        return load_network(network).fingerprint
    return network


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


@table_app.command("export")
def table_export(
    out_arg: Annotated[Optional[Path], typer.Argument(metavar="[OUT]", help="Same as --out.")]
    = None,
    out: Annotated[Optional[Path], typer.Option(help="Table file to write (.csv, or .parquet "
                                                     "with pyarrow; default "
                                                     "latency-table.csv).")] = None,
    store_path: StorePath = None,
    device: DeviceFilter = None,
    network: NetworkFilter = None,
) -> None:
    """Write the store's finished measurements as a latency table."""
    from latency_lab.fileio import check_output_file
    from latency_lab.tables.latency_table import export_table

    if out_arg and out and out_arg != out:
        raise UserError(f"two outputs given ({out_arg} and --out {out}): give one")
    out = out or out_arg or Path("latency-table.csv")

    check_output_file(out, "table")
    from latency_lab.tables.latency_table import table_suffix

    table_suffix(out)
    with _store(store_path) as store:
        table = export_table(store, out, device=device, network=_network_filter(network))
    nets = len({r.spec.fingerprint for r in table.rows})
    print(f"wrote {out}: {len(table)} rows, {nets} network(s), "
          f"{len(table.contexts)} device context(s)")


@table_app.command("import")
def table_import(
    path: Path = typer.Argument(..., help="Table file to import."),
    store_path: StorePath = None,
    context: Optional[str] = typer.Option(None, help="Refuse the table unless all of it is "
                                                     "from this context key."),
) -> None:
    """Import a latency table into the store as summary rows (tables hold no raw samples)."""
    from latency_lab.tables.latency_table import import_table

    with _store(store_path) as store:
        n = import_table(path, store, context)
        print(f"imported {n} summary rows from {path} into {store.path}")


@table_app.command("show")
def table_show(
    path: Path = typer.Argument(..., help="Table file to show."),
    device: DeviceFilter = None,
    network: NetworkFilter = None,
    show_rows: Rows = False,
) -> None:
    """Validate a latency table and print it by network and resolution (--rows: every row)."""
    from latency_lab.tables.latency_table import describe_context, load_table

    table = load_table(path)
    if device:
        table = table.for_context(device)
    wanted = _network_filter(network)
    rows = [r for r in table.rows if wanted is None or wanted in (r.network, r.spec.fingerprint)]
    if network and not rows:
        raise UserError(f"table {path} has no rows for network {network}")
    print(f"{path}: {len(table)} rows, format version ok")
    for key, c in table.contexts.items():
        print(f"context {describe_context(c)}")
        mine = sorted((r for r in rows if r.context.context_key == key),
                      key=lambda r: (r.network, r.resolution, r.latency_ms))
        by_net: dict[str, list] = {}
        for r in mine:
            by_net.setdefault(r.network, []).append(r)
        for name, group in by_net.items():
            fps = {r.spec.fingerprint for r in group}
            print(f"  {name}: {len(group)} rows, {len(fps)} architecture(s)")
            by_res: dict[int, list] = {}
            for r in group:
                by_res.setdefault(r.resolution, []).append(r)
            for res, rs in by_res.items():
                lat = [r.latency_ms for r in rs]
                n_fp = len({r.spec.fingerprint for r in rs})
                span = (f"{lat[0]:.3f} ms" if len(rs) == 1
                        else f"{min(lat):.3f} .. {max(lat):.3f} ms")
                print(f"    {res:5d} px  {len(rs):4d} rows  {n_fp:4d} architecture(s)  {span}")
                if show_rows:
                    for r in rs:
                        print(f"          {r.spec.fingerprint}  {r.latency_ms:9.3f} ms  CI "
                              f"[{_fmt(r.ci_low_ms)}, {_fmt(r.ci_high_ms)}]  n={r.n_samples:<5d}"
                              f" widths {' '.join(map(str, r.spec.widths))}  depths "
                              f"{' '.join(map(str, r.spec.depths))}  {r.origin}")


def _step_limit(text: str, spec, what: str):
    """'2' -> 2 (every stage); '0,0,4,5,5,4,28' -> one per stage, checked."""
    from latency_lab.network.scaling import per_stage
    from latency_lab.cli.options import parse_int_list

    values = parse_int_list(text, what)
    per_stage(values if len(values) > 1 else values[0], len(spec.stages), what)  # checks
    return values if len(values) > 1 else values[0]


@lut_app.command("record")
def lut_record(
    device: DeviceName = "cpu",
    network: NetworkName = DEFAULT_NETWORK,
    resolutions: Resolutions = "240,256,272,288",
    max_width_steps: Annotated[str, typer.Option(help="RBIS width steps the LUT covers: one "
                                                      "number for every stage, or one per "
                                                      "stage (0,0,4,5,5,4,28).")] = "2",
    max_depth_steps: Annotated[str, typer.Option(help="RBIS depth steps the LUT covers (1 "
                                                      "covers any depth): one number, or one "
                                                      "per stage.")] = "1",
    out: Annotated[Optional[Path], typer.Option(help="LUT file (default "
                                                     "lut-NETWORK-DEVICE.json).")] = None,
    calibration: Annotated[int, typer.Option(help="Random scaled networks measured whole, "
                                                  "besides the base network at every "
                                                  "resolution, to fit the overhead and "
                                                  "estimate the error.")] = 2,
    seed: Seed = 0,
    statistic: Annotated[str, typer.Option(help="What the LUT adds up and predicts: median, "
                                                "or p5 (robust to other processes on a "
                                                "shared machine).")] = "median",
    threads: Threads = None,
    affinity: Affinity = None,
    device_option: DeviceOptions = [],  # noqa: B006  (typer copies it)
    store_path: StorePath = None,
    ci_target_pct: CiTarget = B.ci_target_pct,
    min_rounds: MinRounds = B.min_rounds,
    max_rounds: MaxRounds = B.max_rounds,
    runs_per_visit: RunsPerVisit = B.runs_per_visit,
    time_cap_s: TimeCap = B.time_cap_s,
    remeasure: Remeasure = False,
) -> None:
    """Measure every distinct block of the network's scaled versions (resumable) and save a LUT."""
    from latency_lab.network.scaling import blocks_by_kind, scaled_space_blocks
    from latency_lab.cli.options import Progress, make_console
    from latency_lab.fileio import check_output_file
    from latency_lab.tables.lut_file import save_lut
    from latency_lab.tables.lut_record import check_space, record_lut
    from latency_lab.measure.api import get_device, parse_device_options
    from latency_lab.network.presets import load_network
    from latency_lab.sweeps.run import parse_resolutions

    options = parse_device_options(device_option, threads=threads, affinity=affinity)
    spec = load_network(network)
    grid = parse_resolutions(resolutions)
    from latency_lab.tables.lut import STATISTICS

    if statistic not in STATISTICS:
        raise UserError(f"--statistic must be one of {', '.join(STATISTICS)}, not {statistic!r}")
    if calibration < 0:
        raise UserError("--calibration must be >= 0")
    max_width_steps = _step_limit(max_width_steps, spec, "--max-width-steps")
    max_depth_steps = _step_limit(max_depth_steps, spec, "--max-depth-steps")
    from latency_lab.fileio import safe_name

    out = out or Path(f"lut-{safe_name(spec.name)}-{safe_name(device.split(':')[0])}.json")
    check_output_file(out, "LUT")
    proto = protocol(B, ci_target_pct, min_rounds, max_rounds, runs_per_visit, time_cap_s)
    estimate = check_space(spec, grid, max_width_steps, max_depth_steps)
    console = make_console()
    points = scaled_space_blocks(spec, grid, max_width_steps, max_depth_steps)
    with _store(store_path) as store, get_device(device, **options) as dev:
        info = dev.info()
        console.print(f"LUT space: {estimate}", highlight=False)
        console.print(f"[bold]{spec.name}[/] on {info.name} ({info.context_key}): "
                      f"{len(points)} block points {blocks_by_kind(points)}, "
                      f"{len({b.fingerprint for b, _ in points})} block models, resolutions "
                      f"{grid}; store {store.path}")
        with Progress(console) as bar:
            def progress(phase: str, status) -> None:
                bar.label = phase
                bar(status)

            lut = record_lut(dev, spec, grid, max_width_steps, max_depth_steps, store, proto,
                             n_calibration=calibration, seed=seed, progress=progress,
                             statistic=statistic, remeasure=remeasure,
                             say=lambda text: console.print(text, markup=False))
    save_lut(lut, out)
    o = lut.overhead
    err = f"{o.expected_error_pct:.2f}%" if o.expected_error_pct is not None else "unknown"
    console.print(f"wrote {out}: {len(lut.blocks)} blocks ({lut.statistic}); overhead model "
                  f"{o.model} "
                  f"(scale {o.scale:.4f}, offset {o.offset_ms:.3f} ms) from "
                  f"{o.n_points} whole networks ({o.n_excluded} left out: CI too wide); expected "
                  f"error (leave-one-out RMS) {err}")


@lut_app.command("calibrate")
def lut_calibrate(
    lut: LutFile = ...,
    table: Path = typer.Option(..., help="Latency table of the same device context whose "
                                         "whole networks calibrate the LUT's overhead."),
    out: Optional[Path] = typer.Option(None, help="LUT file to write (default: LUT-cal.json)."),
) -> None:
    """Fit a LUT's overhead on a latency table's whole networks (e.g. measured when the
    machine was quieter than during the LUT's recording)."""
    from latency_lab.tables.lut import calibrate_from_table
    from latency_lab.tables.lut_file import load_lut, save_lut
    from latency_lab.tables.latency_table import load_table

    from latency_lab.fileio import check_output_file

    out = out or lut.with_name(lut.stem + "-cal.json")
    check_output_file(out, "LUT")
    new = calibrate_from_table(load_lut(lut), load_table(table))
    save_lut(new, out)
    o = new.overhead
    print(f"wrote {out}: overhead {o.model} (scale {o.scale:.4f}, offset {o.offset_ms:.3f} ms) "
          f"from {new.calibrated_on} ({o.n_excluded} left out: CI too wide); expected error "
          f"(leave-one-out RMS) "
          + (f"{o.expected_error_pct:.2f}%" if o.expected_error_pct is not None else "unknown"))


@lut_app.command("predict")
def lut_predict(
    lut: LutFile = ...,
    network: NetworkName = ...,
    resolution: Resolution = None,
    as_json: AsJson = False,
) -> None:
    """Predict a network's latency from a LUT (sum of blocks + fitted overhead)."""
    from dataclasses import asdict

    from latency_lab.tables.lut_file import load_lut
    from latency_lab.network.presets import load_network
    from latency_lab.network.spec import check_resolution

    table = load_lut(lut)
    spec = load_network(network)
    p = table.predict(spec, check_resolution(resolution or spec.resolution))
    if as_json:
        print(json.dumps({**asdict(p), "context_key": table.context.context_key}, indent=2))
        return
    err = (f"expected error +-{p.expected_error_pct:.1f}% (leave-one-out RMS over "
           f"{table.overhead.n_points} measured networks)" if p.expected_error_pct is not None
           else "expected error unknown (no precise calibration networks)")
    print(f"{p.latency_ms:.3f} ms ({p.statistic})  {spec.name} ({spec.fingerprint}) at "
          f"{p.resolution} on "
          f"{table.context.context_key}: sum of {p.n_blocks} blocks {p.sum_ms:.3f} ms "
          f"(+-{p.blocks_ci_halfwidth_ms:.3f} ms block CI), overhead model {p.overhead_model}; "
          f"{err}")


@lut_app.command("show")
def lut_show(lut: Path = typer.Argument(..., help="LUT file.")) -> None:
    """Validate a LUT and print what it covers and how well it predicted its calibration."""
    from latency_lab.tables.lut_file import load_lut
    from latency_lab.tables.latency_table import describe_context

    t = load_lut(lut)
    print(f"{lut}: LUT of {t.network.name} ({t.network.fingerprint}) recorded {t.created_at}")
    print(f"context {describe_context(t.context)}")
    if t.calibrated_on:
        print(f"overhead calibrated on {t.calibrated_on}")
    print(f"statistic {t.statistic}; resolutions {t.resolutions}, up to {t.max_width_steps} "
          "width and "
          f"{t.max_depth_steps} depth steps per stage; {len(t.blocks)} block points")
    o = t.overhead
    print(f"overhead model {o.model}: scale {o.scale:.4f}, offset {o.offset_ms:.3f} ms, from "
          f"{o.n_points} networks ({o.n_excluded} left out: CI too wide); "
          "leave-one-out RMS % " + ", ".join(f"{k} {v:.2f}" for k, v in o.loo_rms_pct.items()))
    for c in t.calibration:
        pred = o.scale * c.sum_ms + o.offset_ms
        print(f"  {c.network:34s} {c.resolution:4d}  measured {c.measured_ms:9.3f} ms "
              f"(n={c.n_samples})  sum {c.sum_ms:9.3f}  predicted {pred:9.3f} "
              f"({100 * (pred - c.measured_ms) / c.measured_ms:+.2f}%)")
