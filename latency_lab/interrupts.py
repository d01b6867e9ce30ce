"""Signals that stop a command: SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`, a job scheduler)
and SIGHUP (the terminal closed) all stop it the same way.

While a command runs (`handled()`, entered by the CLI's `main`), each of them raises
`Interrupt`, a `KeyboardInterrupt`, in the main thread: every `finally` runs, so the samples
taken are in the store, leases are given back (`measure/protocol.py`), worker processes are
ended (`scaleout/executors.py`, `search/pyworker.py`) and a sweep writes what it measured. The
CLI then prints one line and exits 128 + the signal's number (130, 143, 129), as a shell
reports a process the signal ended. Before that (`install_early()`, the first line of the
program's entry point, while Python imports the command line), nothing has been done: a
signal then prints the same line and ends the process at once. SIGTERM used to end `search`,
`compare` and `lut record` at its default action: no line, leases left for the next run to
take over, `local:N` workers still alive 98 s later (issue 25).

Imports only the standard library: it is loaded before anything else.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WHAT = "what was measured is in the store; run again to resume"

received: int | None = None     # the first signal of this command: it sets the exit code
_armed = False                  # True while a command runs: raise, don't exit
_deferred = 0                   # >0 while the main thread spawns a child (`children_deaf`)
_pending: int | None = None     # a signal that came meanwhile, raised when the spawn is done


class Interrupt(KeyboardInterrupt):
    """A handled signal, raised in the main thread (a KeyboardInterrupt, so that code which
    cleans up after Ctrl-C cleans up after SIGTERM too)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int | None = None) -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + int(signum or received or signal.SIGINT)


def message(signum: int | None = None) -> str:
    """The one line a stopped command prints."""
    signum = int(signum or received or signal.SIGINT)
    if signum == signal.SIGINT:
        return f"interrupted: {WHAT}"
    return f"terminated ({signal.Signals(signum).name}): {WHAT}"


def _handler(signum: int, frame) -> None:
    global received
    if received is None:
        received = signum
    if not _armed:          # start-up or shutdown: nothing to clean up
        os.write(2, (message(signum) + "\n").encode())
        os._exit(exit_code(signum))
    if _deferred:           # a child half spawned would read EOF and print a traceback
        global _pending
        _pending = _pending or signum
        return
    raise Interrupt(signum)


def install_early() -> None:
    """The first thing the program does: a signal before the command starts ends it at once,
    with its line and exit code (not a KeyboardInterrupt traceback from an import)."""
    for sig in HANDLED:
        signal.signal(sig, _handler)


@contextmanager
def children_deaf() -> Iterator[None]:
    """Processes started inside never see Ctrl-C: SIGINT is blocked in this thread while they
    are spawned, and a child keeps the blocked mask for life (a terminal's Ctrl-C goes to the
    whole process group: a worker still importing printed a KeyboardInterrupt traceback). The
    caller is told as before: a SIGINT that came meanwhile is delivered when the mask is back.
    Workers are ended by their owner (`abort`, `close`)."""
    global _deferred, _pending
    main = threading.current_thread() is threading.main_thread()
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, OSError):    # a platform without masks: spawn as before
        old = None
    # The mask keeps SIGINT from this thread only: one delivered to another thread (a
    # process-directed Ctrl-C) still runs the handler here, between two lines of a spawn, and
    # the child then read EOF for its start-up data and printed a traceback (1 test run in
    # ~10). So the handler also waits until the spawn is done.
    if main:
        _deferred += 1
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if main:
            _deferred -= 1
            if not _deferred and _pending is not None:
                signum, _pending = _pending, None
                raise Interrupt(signum)


@contextmanager
def handled() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise `Interrupt` (outside the main thread,
    where Python cannot set handlers, nothing changes); the previous handlers are back after."""
    global _armed, received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in HANDLED}
    was_armed = _armed
    if not was_armed:
        received = None
    for sig in HANDLED:
        signal.signal(sig, _handler)
    _armed = True
    try:
        yield
    finally:
        _armed = was_armed
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


__all__ = ["Interrupt", "HANDLED", "handled", "install_early", "exit_code", "message",
           "children_deaf"]
