"""benchmarks/training_benchmark.py: its verdicts on the synthetic set's claims, and the CPU
time it reads from the DataLoader's workers."""

from __future__ import annotations

from benchmark_helpers import load_benchmark
import subprocess
import sys
import time
from pathlib import Path

import pytest



@pytest.fixture(scope="module")
def tb():
    return load_benchmark("training_benchmark")


def row(label, top1, resolution=96, n=1000):
    from latency_lab.search.training_eval import wilson

    return {"label": label, "top1": top1, "ci95": wilson(top1, n), "resolution": resolution}


def test_claims_need_disjoint_intervals_and_say_which_way(tb):
    out = {"resolution": [row("tiny @48", 47.0, 48), row("tiny @96", 65.8)],
           "capacity": [row("narrower", 61.5), row("shallower", 81.4), row("mbconv-tiny", 65.8),
                        row("wider", 87.8), row("deeper", 67.0)],
           "seeds": [{**row("tiny @96 seed 0", 65.8), "seed": 0},
                     {**row("tiny @96 seed 1", 81.1), "seed": 1}]}
    lines = tb.claims(out)
    verdict = {(c["what"], c["worse"]): c for c in out["claims"]}
    assert verdict[("resolution", "tiny @48")]["clearly"]
    assert verdict[("depth @96", "shallower")]["clearly_opposite"]
    near = verdict[("depth @96", "mbconv-tiny")]            # +1.2 points on 1000 images
    assert not near["clearly"] and not near["clearly_opposite"]
    assert "+18.8 points, clearly" in lines[0] and "beyond the seed range" in lines[0]
    wider = next(x for x in lines if "wider vs mbconv-tiny" in x)
    assert "+22.0 points, clearly" in wider and "beyond the seed range" in wider
    assert any("clearly the opposite" in x and "within the seed range" in x for x in lines)
    assert "range 15.3 points" in lines[-1]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_children_cpu_counts_a_busy_child(tb):
    before = tb.children_cpu()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        busy = tb.children_cpu()
    finally:
        child.kill()
        child.wait()
    assert busy - before > 0.05          # the child's CPU seconds, from /proc
