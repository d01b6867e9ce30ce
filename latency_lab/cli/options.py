"""What the command groups share: the console, progress of a measuring run, parsers of
option values. Nothing here imports a command module."""

from __future__ import annotations

import time

from latency_lab.errors import UserError


def make_console():
    """The console every command prints its progress and notes on: stderr, so that stdout
    carries only what a command is asked for (JSON, a listing)."""
    from rich.console import Console

    return Console(stderr=True)


def device_options(items: list[str], **flags) -> dict[str, object]:
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


class Progress:
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


def parse_int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"malformed {what} {text!r}: give comma-separated integers") from None
    if not values:
        raise UserError(f"no {what} in {text!r}")
    return values
