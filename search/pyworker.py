"""A `py:` function runs in a worker process of its own, spawned once and reused.

Why a process (issue 25): the user's code is as trusted as the command line, but not as well
behaved. In this process a function that called `os._exit(0)` ended `search` with exit code 0,
no result and no word, and one that printed 13 GB in 120 s passed it all through. In a worker,

- a worker that exits (os._exit, sys.exit from a thread, a crash) is a one-line
  `SourceError` naming the network it was evaluating and how the worker ended; one killed by
  a signal (the OOM killer, a `kill`) is replaced and the call made again, up to `RETRIES`
  times, as an executor does with a lost worker process;
- what it prints (stdout and stderr, from Python or from C) goes through a pipe: the first
  `OUTPUT_CAP` bytes (64 KiB) are passed on to our stderr, the rest is counted and dropped,
  and one line says how much was dropped;
- with `timeout=SECONDS` a call that has not returned is stopped by killing the worker (a
  hanging function otherwise runs forever; only a process can be stopped inside C code).

It costs one spawn per function (0.2 s here, at load 8) and a pipe round trip per call (24-84
µs, against the microseconds of a formula and the seconds of a real evaluation). Ctrl-C is the
caller's: the worker ignores SIGINT and is killed when the caller closes the function.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from typing import Any

from latency_lab.interrupts import children_deaf
from latency_lab.search.pycall import (SourceError, Where, call, load, locate, parse_target,
                                       synthetic_mark)

OUTPUT_CAP = 64 * 1024
RETRIES = 3          # as the executors' DEFAULT_RETRIES (Ray's own default)


class _Killed(SourceError):
    """The worker was killed by a signal while answering (not by us at a timeout)."""


class PyFunction:
    """A `py:` function, called in its worker process (see the module docstring)."""

    def __init__(self, text: str, label: str):
        module_name, func_name, self.timeout = parse_target(text)
        self.label = label
        self.where = locate(module_name)
        self.func_name = func_name
        self._worker: _Worker | None = None
        self._output = _Output(label)
        self.synthetic = ""   # what a function marked `synthetic` says it is (made-up values)
        self._start()

    def __call__(self, arg: Any, about: str) -> Any:
        for attempt in range(RETRIES + 1):
            if self._worker is None:
                self._start()
            try:
                return self._worker.call(arg, self.timeout, about)
            except _Killed as exc:
                if attempt == RETRIES:
                    raise SourceError(f"{exc}, {RETRIES + 1} times; giving up") from None
            finally:
                if not self._worker.process.is_alive():   # stopped or died: a fresh one next
                    self._worker = None

    def _start(self) -> None:
        self._worker = _Worker(self.where, self.func_name, self.label, self._output)
        try:
            self.synthetic = self._worker.wait_loaded(
                None if self.timeout is None else max(self.timeout, 60.0))
        except SourceError:
            self._worker = None
            raise

    def source_file(self) -> str | None:
        """The module's file (for a cache key), found without importing it here."""
        import importlib.util
        from pathlib import Path

        directory, module_name = self.where
        if directory:
            base = Path(directory, *module_name.split("."))
            return str(base / "__init__.py" if base.is_dir() else base.with_suffix(".py"))
        spec = importlib.util.find_spec(module_name)
        return spec.origin if spec else None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._output.summary()


class _Output:
    """What the workers of one function printed: the first OUTPUT_CAP bytes go to stderr, the
    rest is counted; `summary()` says what was dropped, once."""

    def __init__(self, label: str):
        self.label, self.shown, self.dropped = label, 0, 0
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def drain(self, fd: int) -> None:
        """Read a worker's output pipe until it closes (a daemon thread per worker)."""
        thread = threading.Thread(target=self._read, args=(fd,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _read(self, fd: int) -> None:
        try:
            while True:
                data = os.read(fd, 1 << 16)
                if not data:
                    return
                with self.lock:
                    room = max(0, OUTPUT_CAP - self.shown)
                    if room:
                        try:
                            sys.stderr.buffer.write(data[:room])
                            sys.stderr.flush()
                        except (AttributeError, OSError, ValueError):
                            pass       # a stderr without a buffer (captured): nothing shown
                    self.shown += min(room, len(data))
                    self.dropped += len(data) - min(room, len(data))
        finally:
            os.close(fd)

    def summary(self) -> None:
        for thread in self.threads:
            thread.join(5)
        self.threads = []
        with self.lock:
            if self.dropped:
                print(f"\n{self.label} printed {self.shown + self.dropped:,d} bytes; the first "
                      f"{self.shown:,d} are shown above, the rest was dropped (py: output is "
                      f"capped at {OUTPUT_CAP // 1024} KiB)", file=sys.stderr, flush=True)
                self.dropped = 0


def _serve(conn, out, where: Where, func_name: str, label: str) -> None:
    """The worker: its stdout and stderr into the output pipe, load the function, then answer
    calls until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the caller's to handle
    for fd in (1, 2):
        os.dup2(out.fileno(), fd)
    out.close()
    try:
        func = load(where, func_name, label)
    except SourceError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ok", synthetic_mark(func)))
    while True:
        try:
            arg, about = conn.recv()
        except EOFError:
            return
        try:
            value = call(func, arg, label, about)
            answer = ("ok", value)
        except SourceError as exc:
            answer = ("error", str(exc))
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            conn.send(answer)
        except Exception as exc:   # a value that cannot be sent back (not picklable)
            conn.send(("error", f"{label} returned what cannot be used: {exc}"))


class _Worker:
    def __init__(self, where: Where, func_name: str, label: str, output: _Output):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        out_read, out_write = ctx.Pipe(duplex=False)
        self.label = label
        self.process = ctx.Process(target=_serve, args=(child, out_write, where, func_name,
                                                        label), daemon=True)
        with children_deaf():        # Ctrl-C is the caller's, from the worker's first line
            self.process.start()
        child.close()
        out_write.close()
        output.drain(os.dup(out_read.fileno()))
        out_read.close()

    def _answer(self, timeout: float | None, what: str):
        if not self.conn.poll(timeout):
            self.stop()
            raise SourceError(f"{self.label} did not return within {timeout:g} s {what} "
                              "(timeout= option); stopped it")
        try:
            status, value = self.conn.recv()
        except EOFError:
            self.stop()
            killed = (self.process.exitcode or 0) < 0
            raise (_Killed if killed else SourceError)(
                f"{self.label}: its worker process {self._how()} {what}") from None
        if status == "error":
            raise SourceError(value)
        return value

    def _how(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "died"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited (os._exit({code}) or a crash)"

    def wait_loaded(self, timeout: float | None) -> str:
        return self._answer(timeout, "while importing")

    def call(self, arg: Any, timeout: float | None, about: str) -> Any:
        try:
            self.conn.send((arg, about))
        except (BrokenPipeError, OSError):
            self.stop()
            raise SourceError(f"{self.label}: its worker process {self._how()} before {about}")
        return self._answer(timeout, f"for {about}")

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


__all__ = ["PyFunction", "OUTPUT_CAP"]
