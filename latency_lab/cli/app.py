"""The `latency-lab` command line: parses arguments, calls the library, prints.

Heavy libraries (TensorFlow, LiteRT, pandas, torch) are imported inside the commands that
need them, so `--help` and `network show` start fast. Errors a user can cause are printed as
one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from latency_lab.errors import UserError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Measure CNN latency over input resolution and scale networks to a budget.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"latency-lab {version('latency-lab')}")
        except PackageNotFoundError:   # run from a checkout that was never installed
            print("latency-lab (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _main(show_version: bool = typer.Option(False, "--version", callback=_version,
                                            is_eager=True, help="Print the version and exit.")
          ) -> None:
    """Measure CNN latency over input resolution and scale networks to a budget."""


network_app = typer.Typer(no_args_is_help=True, help="Network presets and specs.")
app.add_typer(network_app, name="network")


def _console():
    from rich.console import Console

    return Console(stderr=True)


@network_app.command("list")
def network_list() -> None:
    """List the preset networks."""
    from latency_lab.network import complexity
    from latency_lab.network import presets

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
    from latency_lab.network import complexity
    from latency_lab.network.presets import load_network
    from latency_lab.network.spec import check_resolution

    spec = load_network(name)
    res = check_resolution(resolution) if resolution is not None else spec.resolution
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


@network_app.command("export")
def network_export(
    name: str = typer.Argument(..., help="Preset name, network JSON file, or a search's result "
                                         "directory (its winner)."),
    fmt: str = typer.Option(..., "--format", help="tflite, onnx, keras (.keras) or torch "
                                                  "(torch.export .pt2)."),
    out: Path = typer.Option(..., help="File to write."),
    resolution: Optional[int] = typer.Option(None, help="Fix the input to R x R (default: H and "
                                                        "W dynamic)."),
    builder: str = typer.Option("direct", help="tflite only: direct (the emitter) or keras "
                                               "(the TFLite converter)."),
) -> None:
    """Write a network as a model file (random initial weights) to deploy or benchmark elsewhere."""
    from latency_lab.models.export import check_format, export_network
    from latency_lab.fileio import check_output_file
    from latency_lab.models.files import check_builder
    from latency_lab.network.presets import load_network
    from latency_lab.network.spec import check_resolution

    check_format(fmt)
    check_builder(builder)
    spec = load_network(name)
    res = check_resolution(resolution) if resolution is not None else None
    check_output_file(out, "--out")
    what = export_network(spec, fmt, out, res, builder)
    print(f"wrote {out}: {spec.name} ({spec.fingerprint}), {what}")


@app.command("devices")
def devices() -> None:
    """List the device drivers that can be named with --device."""
    from latency_lab.measure.api import device_names

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
    from latency_lab.fileio import check_output_dir, check_output_file
    from latency_lab.measure.api import get_device
    from latency_lab.paths import default_store_path
    from latency_lab.network.presets import load_network
    from latency_lab.measure.protocol import Protocol
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
    last = bar.last
    if last is not None and (last.reused or last.resumed):
        console.print(f"from the store: {last.reused} finished point(s) reused as they were, "
                      f"{last.resumed} measured further (--remeasure measures all anew)")
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
        _report_jumps(console, frame, jumps_dir)
    advice = ci_advice(frame, ci_target_pct, time_cap_s, len(grid), jumps, max_rounds)
    if advice:
        console.print(advice, highlight=False)


def ci_advice(frame, target_pct: float, time_cap_s: float, n_points: int,
              jumps: bool = True, max_rounds: int = 100) -> str:
    """What to do when points stopped short of the CI target ('' when all reached it)."""
    missed = frame[frame["ci_halfwidth_pct"] > target_pct]
    if not len(missed):
        return ""
    why = missed["stop_reason"].value_counts().to_dict()
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
            f"median +-{missed['ci_halfwidth_pct'].median():.2f}%; stopped: {why})"
            + ("; the jump test above used these wider CIs" if jumps else "")
            + ". To narrow them: " + "; ".join(todo) + ".")


def _report_jumps(console, frame, out_dir: Path) -> None:
    from latency_lab.errors import JumpInputError
    from latency_lab.sweeps.jumps import analyze_sweep

    try:
        analysis = analyze_sweep(frame, out_dir)   # points never reached are left out
    except JumpInputError as exc:  # e.g. too few points: the sweep itself is fine and written
        console.print(f"no jump analysis: {exc}")
        return
    before = [int(r) for r in analysis.result.jumps["resolution_before"]]
    from latency_lab.sweeps.candidates import kept

    picks = kept(analysis.candidates)
    what = (f"candidate resolutions {picks} (the largest jumps; `latency-lab jumps "
            f"--budget-ms T` keeps those with room under a budget)" if picks
            else "no candidate resolutions")
    console.print(f"jumps after {before or 'none'}; {what}; report in {out_dir}/")


def _device_options(items: list[str], **flags) -> dict[str, object]:
    from latency_lab.measure.api import parse_device_options

    return parse_device_options(items, **flags)


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def status_line(st) -> str:
    """One line for a `protocol.RunStatus`: rounds, points done, current CI, time left."""
    parts = [f"round {st.rounds}", f"{st.done}/{st.total} points done"]
    if st.ci_pct is not None:
        parts.append(f"CI +-{st.ci_pct:.2f}% median, {st.worst_ci_pct:.2f}% widest "
                     f"(target {st.target_pct:g}%)")
    parts.append(f"{_duration(st.elapsed_s)} elapsed")
    if st.eta_s is not None:
        parts.append(f"~{_duration(st.eta_s)} left" + (" (time cap)" if st.capped_eta else ""))
    return ", ".join(parts)


NOTE_EVERY_S = 10.0


class _progress:
    """Progress of a measuring run, called with a `protocol.RunStatus` after every round.

    On a terminal a rich bar over the estimated time (elapsed / elapsed + time left) with the
    status line and what happens now (a point's set-up) beside it; otherwise (output to a file
    or a pipe) the status line printed once per round, and set-up notes at most every
    NOTE_EVERY_S, so a log shows how the run went."""

    def __init__(self, console, label: str = ""):
        self.console, self.label = console, label
        self.bar = self.last = None
        self.note, self.noted = "", 0.0

    def __enter__(self):
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn

            self.bar = Progress(BarColumn(), TextColumn("{task.description}"),
                                console=self.console, transient=False)
            self.bar.start()
            self.task = self.bar.add_task("starting", total=None)
        return self

    def __call__(self, status) -> None:
        self.last = status
        text = (f"{self.label}: " if self.label else "") + status_line(status)
        self.note = status.note   # what happens now (a set-up): shown only while it does
        if status.note:   # beside the bar; in a log, now and then
            if self.bar is None:
                if time.monotonic() - self.noted < NOTE_EVERY_S:
                    return
                self.noted = time.monotonic()
                text += f"; {status.note}"
        if self.bar is None:
            self.console.print(text, highlight=False, soft_wrap=True)
            return
        total = status.elapsed_s + status.eta_s if status.eta_s is not None else None
        done = status.done == status.total
        self.bar.update(self.task, description=f"{text}  {self.note}".rstrip(),
                        completed=total if done else status.elapsed_s, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


from latency_lab.cli.search import compare_command, scale_command, search_command  # noqa: E402

app.command("search")(search_command)
app.command("scale")(scale_command)
app.command("compare")(compare_command)

from latency_lab.cli.jumps import jumps_command  # noqa: E402

app.command("jumps")(jumps_command)

from latency_lab.cli.tables import lut_app, table_app  # noqa: E402

app.add_typer(table_app, name="table")

from latency_lab.cli.plan import sweep_plan_command  # noqa: E402

app.command("sweep-plan")(sweep_plan_command)
app.add_typer(lut_app, name="lut")

from latency_lab.cli.cache import cache_app  # noqa: E402

app.add_typer(cache_app, name="cache")
from latency_lab.cli.accuracy import accuracy_app  # noqa: E402

app.add_typer(accuracy_app, name="accuracy")

from latency_lab.cli.data import dataset_app  # noqa: E402

app.add_typer(dataset_app, name="dataset")


INTERRUPTED = "interrupted: what was measured is in the store; run again to resume"


def _click_exceptions():
    """click's exception module: typer vendors click from 0.26 on, uses the package before."""
    try:
        from typer._click import exceptions
    except ImportError:  # typer < 0.26
        from click import exceptions
    return exceptions


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every way out is an exit code and at most one line on stderr.

    Typer runs without its standalone mode so that usage errors come here (one line instead of
    a 5-line box) and so does Ctrl-C: typer turns KeyboardInterrupt into a return value of 130.
    """
    click = _click_exceptions()
    try:
        code = app(args=argv, prog_name="latency-lab", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except click.NoArgsIsHelpError as exc:   # `latency-lab`, `latency-lab table`: the help
        exc.show()
        return 2
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "latency-lab"
        print(f"error: {exc.format_message()} (see '{where} --help')", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except SystemExit as exc:  # sys.exit("message") in a user's py: function, say
        if isinstance(exc.code, int) or exc.code is None:
            return exc.code or 0
        print(f"error: {exc.code}", file=sys.stderr)
        return 2
    if code == 130:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
