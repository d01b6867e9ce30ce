"""LiteRT's interpreter without its start-up line in the middle of a progress bar.

LiteRT's C++ code prints `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` on stderr
when an interpreter first allocates its tensors (the delegate is applied lazily), past any
Python logging setting; there is no Python switch for it (LiteRT's C++ `LoggerOptions` only).
It landed inside the sweep's progress bar (issue 26). `quiet_stderr` sends file descriptor 2 to
a temporary file for the span of such a call, then writes back everything but that line, so a
real error message still reaches the user (after the call, not lost).
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager

DROPPED = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextmanager
def quiet_stderr(dropped: tuple[str, ...] = DROPPED):
    """Lines of `dropped` that native code writes to fd 2 inside the block are left out; the
    rest is written to stderr when the block ends."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):     # no usable fd 2 (a closed stderr): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if line.rstrip("\n") not in dropped]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet_interpreter(**kwargs):
    """`ai_edge_litert.interpreter.Interpreter(**kwargs)` made, and allocated once, quietly."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_stderr():
        interp = Interpreter(**kwargs)
        interp.allocate_tensors()
    return interp
