"""A progress bar per training run (rich, on stderr, only when stderr is a terminal)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


class _Bar:
    def __init__(self, label: str, epochs: int, steps: int, progress=None):
        self.label, self.epochs, self.steps = label, epochs, steps
        self.progress, self.task, self.epoch, self.done = progress, None, 0, 0
        if progress is not None:
            self.task = progress.add_task(self._text(float("nan")), total=epochs * steps)

    def _text(self, loss: float) -> str:
        return f"{self.label} epoch {min(self.epoch + 1, self.epochs)}/{self.epochs} loss {loss:.3f}"

    def advance_epochs(self, n: int) -> None:
        """Mark `n` epochs as done before starting (a resumed run)."""
        self.epoch, self.done = n, n * self.steps
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done)

    def step(self, loss: float) -> None:
        self.done += 1
        self.epoch = min(self.done // self.steps, self.epochs)
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done, description=self._text(loss))


@contextmanager
def progress_bar(label: str, epochs: int, steps: int, enabled: bool = True) -> Iterator[_Bar]:
    if not (enabled and sys.stderr.isatty()):
        yield _Bar(label, epochs, steps)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn,
                               TimeRemainingColumn)

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as progress:
        yield _Bar(label, epochs, steps, progress)
