"""The `latency-lab` command line: parses arguments, calls the library, prints.

Heavy libraries (TensorFlow, LiteRT, pandas, torch) are imported inside the commands that
need them, so `--help` and `network show` start fast. Errors a user can cause are printed as
one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import atexit
import gc
import sys

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
    from latency_lab.models.cache import max_bytes

    max_bytes()   # LATENCY_LAB_CACHE_MAX_MB, read mid-work by the model cache: checked first


from latency_lab.cli.network import network_app  # noqa: E402

app.add_typer(network_app, name="network")

from latency_lab.cli.sweep import devices_command, sweep  # noqa: E402

app.command("devices")(devices_command)
app.command("sweep")(sweep)

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
from latency_lab.cli.accuracy import accuracy_app, evaluators_command  # noqa: E402

app.add_typer(accuracy_app, name="accuracy")
app.command("evaluators")(evaluators_command)

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

    Run as the console script (argv None), the objects left at the end are frozen out of the
    garbage collector: the interpreter's collection at exit would walk every object pandas,
    numpy and matplotlib made at import, 0.2 s of the `jumps` command's 1.2 s of CPU.

    Typer runs without its standalone mode so that usage errors come here (one line instead of
    a 5-line box) and so does Ctrl-C: typer turns KeyboardInterrupt into a return value of 130.
    SIGTERM and SIGHUP are handled as Ctrl-C is (`latency_lab.interrupts`): one line, exit
    143 or 129. A command whose output went to /dev/stdout printed its messages on stderr
    (`fileio`); stdout is the real one again afterwards.
    """
    from latency_lab import interrupts

    if argv is None:
        atexit.register(gc.freeze)   # runs before the interpreter's final collection
    stdout = sys.stdout
    try:
        with interrupts.handled():
            code = _run(argv)
            if interrupts.received is not None or code == 130:
                code = interrupts.exit_code()
                print(interrupts.message(), file=sys.stderr)
            return code
    finally:
        sys.stdout = stdout


def _run(argv: list[str] | None) -> int:
    click = _click_exceptions()
    try:
        code = app(args=argv, prog_name="latency-lab", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:   # an optional extra's module, met where no check was
        from latency_lab.extras import missing_extra_error

        err = missing_extra_error(exc)
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
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
        return 130
    except SystemExit as exc:  # sys.exit("message") in a user's py: function, say
        if isinstance(exc.code, int) or exc.code is None:
            return exc.code or 0
        print(f"error: {exc.code}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
