"""Shared fixtures for the search tests: synthetic py: modules written to a temp directory.

The latency and accuracy functions are analytic so that answers can be worked out by hand;
they are test inputs, not models of any device.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

_counter = itertools.count()

# Linear in the widths and depths of EfficientNet-B0's stages 3 and 6 (baseline widths 80,
# 320; depths 3, 1) and in resolution: the hand-solved cases in test_search_rbis.py use it.
LINEAR = """
W0 = (16, 24, 40, 80, 112, 192, 320)
D0 = (1, 2, 2, 3, 3, 4, 1)

def _wd(net):
    return [s["width"] for s in net["stages"]], [s["depth"] for s in net["stages"]]

def latency_ms(net):
    w, d = _wd(net)
    return (100.0 + 1.0 * (w[3] - 80) + CW6 * (w[6] - 320) + 10.0 * (d[3] - 3)
            + 20.0 * (d[6] - 1) + RES_MS * (net["resolution"] - 224))

def accuracy(net):
    w, d = _wd(net)
    return (70.0 + 0.1 * (w[3] - 80) + AW6 * (w[6] - 320) + 1.0 * (d[3] - 3)
            + 0.5 * (d[6] - 1) + RES_ACC * (net["resolution"] - 224))
"""

# Nonlinear: MACs-based latency with a per-block cost, saturating accuracy, for rule checks.
NONLINEAR = """
import math
from latency_lab.network.complexity import macs
from latency_lab.network.spec import NetworkSpec

def latency_ms(net):
    spec = NetworkSpec.from_dict(net)
    return 5.0 + 0.4 * sum(spec.depths) + 0.4 * macs(spec, net["resolution"]) / 1e6

GAIN_W = (0.1, 0.1, 0.3, 1.0, 0.8, 0.7, 0.4)
GAIN_D = (0.1, 0.1, 0.1, 0.3, 0.2, 0.4, 0.1)
W0 = (16, 24, 40, 80, 112, 192, 320)
D0 = (1, 2, 2, 3, 3, 4, 1)

def accuracy(net):
    g = 0.9 * math.log(net["resolution"] / 224)
    for i, s in enumerate(net["stages"]):
        g += GAIN_W[i] * math.log(s["width"] / W0[i]) + GAIN_D[i] * math.log(s["depth"] / D0[i])
    return 81.0 - 4.3 * math.exp(-g)

def raises(net):
    if sum(s["depth"] for s in net["stages"]) > 16:
        raise RuntimeError("trainer crashed")
    return accuracy(net)

def nan_after_baseline(net):
    if sum(s["depth"] for s in net["stages"]) > 16:
        return float("nan")
    return accuracy(net)
"""


def write_module(directory: Path, body: str, **constants) -> str:
    """Write a uniquely named module into `directory`; returns its name."""
    name = f"synth_{next(_counter)}"
    head = "".join(f"{k} = {v!r}\n" for k, v in constants.items())
    (directory / f"{name}.py").write_text(head + textwrap.dedent(body))
    sys.modules.pop(name, None)
    return name


def linear_module(directory: Path, cw6=0.25, aw6=0.05, res_ms=0.0, res_acc=0.0) -> str:
    return write_module(directory, LINEAR, CW6=cw6, AW6=aw6, RES_MS=res_ms, RES_ACC=res_acc)


def nonlinear_module(directory: Path) -> str:
    return write_module(directory, NONLINEAR)
