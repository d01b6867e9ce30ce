"""The `latency-lab` program (pyproject's console script): signals are handled from its first
line, before the command line is imported (`latency_lab.interrupts`), then `app.main` runs.

Why a module of its own: the script imports its target module before it calls `main`, and
importing `cli/app.py` imports typer and every command module, 0.1-0.3 s in which a Ctrl-C
was a KeyboardInterrupt traceback and a SIGTERM an exit without a word (issue 25).
"""

from __future__ import annotations


def main() -> int:
    from latency_lab import interrupts

    interrupts.install_early()
    from latency_lab.cli.app import main as run

    return run()


if __name__ == "__main__":
    import sys

    sys.exit(main())
