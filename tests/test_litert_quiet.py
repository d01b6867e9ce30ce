"""LiteRT's XNNPACK start-up line stays out of the progress bar; other stderr lines do not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from latency_lab.models.litert import DROPPED, quiet_stderr


def test_the_delegate_line_is_dropped_and_a_real_message_kept(capfd):
    with quiet_stderr():
        os.write(2, (DROPPED[0] + "\n").encode())
        os.write(2, b"ERROR: something a user must see\n")
    err = capfd.readouterr().err
    assert DROPPED[0] not in err and "ERROR: something a user must see" in err


CODE = """
import sys
from ai_edge_litert.interpreter import Interpreter
from latency_lab.models.files import tflite_bytes
from latency_lab.models.litert import quiet_interpreter
from latency_lab.network.presets import load_network
model = tflite_bytes(load_network("mbconv-tiny"), "direct")
if sys.argv[1] == "quiet":
    quiet_interpreter(model_content=model, num_threads=1).invoke()
else:
    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    it.invoke()
"""


@pytest.mark.slow
def test_a_real_interpreter_says_nothing_on_stderr():
    """LiteRT prints the line once per process: each case in a process of its own, the plain
    interpreter as the control that shows the line is there to drop."""
    def stderr(mode):
        p = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stderr

    assert DROPPED[0] in stderr("plain")
    assert "XNNPACK" not in stderr("quiet")
