"""The `latency-lab` command line: parses arguments, calls the library, prints.

Heavy libraries (TensorFlow, LiteRT, pandas, torch) are imported inside the commands that
need them, so `--help` and `network show` start fast. Errors a user can cause are printed as
one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from latency_lab.errors import UserError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Measure CNN latency over input resolution and scale networks to a budget.")
network_app = typer.Typer(no_args_is_help=True, help="Network presets and specs.")
app.add_typer(network_app, name="network")


def _console():
    from rich.console import Console

    return Console(stderr=True)


@network_app.command("list")
def network_list() -> None:
    """List the preset networks."""
    from latency_lab import complexity, presets

    for name in presets.names():
        spec = presets.get(name)
        print(f"{name:26s} {spec.fingerprint}  {complexity.params(spec):>10,d} params  "
              f"{complexity.macs(spec) / 1e9:6.3f} GMACs @ {spec.resolution}  ({spec.source})")


@network_app.command("show")
def network_show(
    name: str = typer.Argument(..., help="Preset name or path to a network JSON file."),
    resolution: Optional[int] = typer.Option(None, help="Count MACs at this resolution."),
    as_json: bool = typer.Option(False, "--json", help="Print the spec as JSON."),
) -> None:
    """Print a network's spec, parameter count and MACs."""
    from latency_lab import complexity
    from latency_lab.presets import load_network
    from latency_lab.spec import check_resolution

    spec = load_network(name)
    res = check_resolution(resolution) if resolution else spec.resolution
    n_params, n_macs = complexity.params(spec), complexity.macs(spec, res)
    if as_json:
        print(json.dumps({**spec.to_dict(), "fingerprint": spec.fingerprint,
                          "params": n_params, "macs": n_macs, "macs_resolution": res}, indent=2))
        return
    print(f"{spec.name}  fingerprint {spec.fingerprint}  ({spec.source or 'custom'})")
    print(f"resolution {spec.resolution}, activation {spec.activation}, classes {spec.num_classes}")
    print(f"stem   width {spec.stem.width:5d}  k{spec.stem.kernel} s{spec.stem.stride}")
    for i, s in enumerate(spec.stages):
        blocks = " ".join(f"k{b.kernel}e{b.expansion:g}" + ("s2" if b.stride == 2 else "")
                          for b in s.blocks)
        print(f"stage {i} width {s.width:5d}  depth {s.depth:2d}  se {s.se_ratio:g}  {blocks}")
    print(f"head   width {spec.head_width:5d}")
    print(f"params {n_params:,d}   MACs {n_macs:,d} ({n_macs / 1e9:.3f} G) at {res}x{res}")


@app.command("devices")
def devices() -> None:
    """List the device drivers that can be named with --device."""
    from latency_lab.measure import device_names

    for name in device_names():
        print(name)


@app.command("sweep")
def sweep(
    device: str = typer.Option("cpu", help="Device driver name (see `latency-lab devices`)."),
    network: str = typer.Option("efficientnet-b0", help="Preset name or network JSON file."),
    resolutions: str = typer.Option("160:400:4", help="start:stop:step (inclusive) or a,b,c."),
    out: Path = typer.Option(Path("sweep.csv"), help="CSV to write, one row per resolution."),
    threads: Optional[int] = typer.Option(None, help="Inference threads (device default: 1)."),
    affinity: Optional[str] = typer.Option(None, help="Pin to CPUs, e.g. 0 or 0-3 (cpu device)."),
    serial: Optional[str] = typer.Option(None, help="ADB serial of the phone (android, pixel2)."),
    device_option: list[str] = typer.Option([], "--device-option", "-O",
                                            help="Driver option KEY=VALUE, repeatable "
                                                 "(e.g. adb_port=5037, binary=PATH, precision=fp16)."),
    store_path: Optional[Path] = typer.Option(None, "--store", help="SQLite store of samples."),
    remeasure: bool = typer.Option(False, help="Measure again even where the store has results."),
    ci_target_pct: float = typer.Option(1.0, help="Stop a point at this CI half-width (% of median)."),
    min_rounds: int = typer.Option(8, help="Rounds before a point may stop."),
    max_rounds: int = typer.Option(100, help="Rounds after which a point stops anyway."),
    runs_per_visit: int = typer.Option(8, help="Samples per point per round."),
    time_cap_s: float = typer.Option(900.0, help="Wall-time cap of the sweep, seconds."),
    jumps: bool = typer.Option(True, help="Detect latency jumps at the end (`latency-lab jumps`)."),
    jumps_out: Optional[Path] = typer.Option(None, help="Directory of the jump report "
                                                        "(default: next to --out, OUT_jumps/)."),
) -> None:
    """Sweep a network's input resolution on a device and write the latency curve as CSV.

    At the end, the jump detector writes jumps.csv, drops.csv, candidates.csv and sweep.png
    (see `latency-lab jumps`) unless --no-jumps.
    """
    from latency_lab.measure import get_device
    from latency_lab.paths import default_store_path
    from latency_lab.presets import load_network
    from latency_lab.protocol import Protocol
    from latency_lab.store import Store
    from latency_lab.protocol import Interrupted
    from latency_lab.sweep import (launch_notes, parse_resolutions, run_sweep, sigterm_interrupts,
                                   to_frame, write_csv)

    spec = load_network(network)
    grid = parse_resolutions(resolutions)
    _check_writable(out)
    protocol = Protocol(runs_per_visit=runs_per_visit, min_rounds=min_rounds,
                        max_rounds=max_rounds, ci_target_pct=ci_target_pct, time_cap_s=time_cap_s)
    store = Store(store_path or default_store_path())
    dev = get_device(device, **_device_options(device_option, threads=threads,
                                               affinity=affinity, serial=serial))
    console = _console()
    info = dev.info()
    console.print(f"[bold]{spec.name}[/] ({spec.fingerprint}) on {info.name}: {info.hardware}, "
                  f"{info.runtime} {info.runtime_version}"
                  f"{f', {info.threads} thread(s)' if info.threads else ''}"
                  f"{f', batch {info.batch_size}' if info.batch_size > 1 else ''}; "
                  f"{len(grid)} resolutions {grid[0]}..{grid[-1]}; store {store.path}")
    with dev, _progress(console) as bar, sigterm_interrupts():
        try:
            frame = run_sweep(dev, spec, grid, store, protocol, remeasure, progress=bar)
        except Interrupted as exc:   # what was measured still reaches the CSV
            bar.__exit__()
            frame = to_frame(exc.measurements)
            write_csv(frame, out)
            console.print(f"interrupted: wrote {out} with the {int(frame['n_samples'].gt(0).sum())}"
                          f" of {len(frame)} points measured so far (stop reason interrupted or "
                          f"as they stopped); run again to resume")
            raise
    write_csv(frame, out)
    reasons = frame["stop_reason"].value_counts().to_dict()
    console.print(f"wrote {out}: {len(frame)} points, {int(frame['n_samples'].sum())} samples, "
                  f"median CI half-width {frame['ci_halfwidth_pct'].median():.2f}%, "
                  f"stopped: {reasons}")
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
    if jumps:
        _report_jumps(console, frame, jumps_out or out.with_name(out.stem + "_jumps"))


def _report_jumps(console, frame, out_dir: Path) -> None:
    from latency_lab.errors import JumpInputError
    from latency_lab.jumps import analyze_sweep

    try:
        analysis = analyze_sweep(frame, out_dir)   # points never reached are left out
    except JumpInputError as exc:  # e.g. too few points: the sweep itself is fine and written
        console.print(f"no jump analysis: {exc}")
        return
    before = [int(r) for r in analysis.result.jumps["resolution_before"]]
    from latency_lab.candidates import kept

    picks = kept(analysis.candidates)
    what = (f"candidate resolutions {picks} (the largest jumps; `latency-lab jumps "
            f"--budget-ms T` keeps those with room under a budget)" if picks
            else "no candidate resolutions")
    console.print(f"jumps after {before or 'none'}; {what}; report in {out_dir}/")


def _device_options(items: list[str], **flags) -> dict[str, object]:
    """['adb_port=5038', 'binary=/x'] -> {'adb_port': '5038', 'binary': '/x'}, plus the
    options that have a flag of their own (--threads, ...) where given; the text is converted
    to the driver's types by `get_device`. A key given twice is refused."""
    options: dict[str, object] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise UserError(f"malformed --device-option {item!r}: use KEY=VALUE")
        if key in options:
            raise UserError(f"device option {key!r} given twice")
        options[key] = value
    for key, value in flags.items():
        if value is not None and key in options:
            raise UserError(f"give --{key} or -O {key}=..., not both")
        if value is not None:
            options[key] = value
    return options


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"output {path} is a directory")
    if parent.exists() and not parent.is_dir():
        raise UserError(f"cannot write {path}: {parent} is not a directory")
    probe = parent if parent.exists() else next((p for p in parent.parents if p.exists()), Path("."))
    import os

    if not os.access(probe, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied")


class _progress:
    """A rich progress bar on a terminal; silent otherwise. Called as progress(done, total, s,
    status=...): the status (a shape being set up, how long the last set-up took) is shown
    beside the bar while it happens."""

    def __init__(self, console):
        self.console = console
        self.bar = None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("points done", total=None)
        return self

    def __call__(self, done: int, total: int, elapsed: float, status: str = "") -> None:
        if self.bar is not None:
            if status:
                self.status = status
            self.bar.update(self.task, completed=done, total=total,
                            description=f"points done  {getattr(self, 'status', '')}")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


from latency_lab.cli_search import compare_command, scale_command, search_command  # noqa: E402

app.command("search")(search_command)
app.command("scale")(scale_command)
app.command("compare")(compare_command)

from latency_lab.cli_jumps import jumps_command  # noqa: E402

app.command("jumps")(jumps_command)

from latency_lab.cli_tables import lut_app, table_app  # noqa: E402

app.add_typer(table_app, name="table")

from latency_lab.cli_plan import sweep_plan_command  # noqa: E402

app.command("sweep-plan")(sweep_plan_command)
app.add_typer(lut_app, name="lut")

from latency_lab.cli_accuracy import accuracy_app  # noqa: E402

app.add_typer(accuracy_app, name="accuracy")

from latency_lab.cli_data import dataset_app  # noqa: E402

app.add_typer(dataset_app, name="dataset")


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="latency-lab")  # standalone: usage errors exit 2 by themselves
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was measured is in the store; run again to resume",
              file=sys.stderr)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
