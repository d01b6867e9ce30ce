"""A search says what it costs and how far it is when evaluations are slow, what it resumes
when rerun, and nothing extra when evaluations are instant (issue 26: a zen-tuned search was
silent for 3.5 minutes, then took an hour)."""

from __future__ import annotations

import re
import time

import pytest

from latency_lab.network import presets
from latency_lab.search.evaluators import EvalResult, Evaluator
from latency_lab.search.progress import SearchProgress
from latency_lab.search.rbis import run_rbis
from latency_lab.search.sources import PyLatency
from search_helpers import nonlinear_module

B0 = presets.get("efficientnet-b0")


def test_slow_evaluations_get_the_expected_cost_then_a_line_each():
    lines: list[str] = []
    p = SearchProgress(lines.append, budget_ms=20.0, resolutions=2, k=10, singles=5,
                       evaluator="zen-tuned")
    p.start_resolution(224, 12.0)
    p.evaluated(14.0, "r=224, baseline")        # no step cost known yet: nothing to estimate
    p.first_candidates(224, [11.9, 12.5, 13.0, 14.0])   # median added: 1.0 ms -> 8 iterations
    p.evaluated(14.0, "r=224, iteration 0")
    # 2 resolutions x (baseline + 10 x 8 iterations + 5 singles) = 172 evaluations
    assert lines[0] == "evaluation 1 (r=224, baseline, 14.0 s; 14.0 s on average)"
    assert lines[1].startswith("evaluations take 14.0 s each (zen-tuned); a search like this "
                               "makes about 172: about 40m08s in all")
    assert lines[2] == ("evaluation 2 of about 172, ~39m40s left (r=224, iteration 0, 14.0 s; "
                        "14.0 s on average)")
    p.step(224, 16.0, 2)                            # 2 ms a step: 4 iterations at 224
    p.had(3)
    p.evaluated(14.0)
    assert re.match(r"evaluation 6 of about \d+, ", lines[3])


def test_instant_evaluations_say_nothing():
    lines: list[str] = []
    p = SearchProgress(lines.append, 20.0, 1, 10, 5)
    p.start_resolution(224, 12.0)
    p.first_candidates(224, [13.0])
    for _ in range(50):
        p.evaluated(0.001)
    assert lines == []


class Slow(Evaluator):
    """A real evaluator that takes its time (sleeps) and scores width and depth."""

    name = "slow-test"
    metric = "score"
    unit = ""

    def evaluate(self, request):
        time.sleep(1.05)
        return EvalResult(float(sum(request.spec.widths)) / 100 + sum(request.spec.depths))


@pytest.mark.slow
def test_a_slow_search_reports_progress_and_a_rerun_says_what_it_resumes(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = nonlinear_module(tmp_path)
    src = PyLatency(f"{mod}:latency_ms")
    budget = 1.06 * src.latency_ms(B0, 224)
    log: list[str] = []
    run_rbis(B0, budget, [224], src, Slow(), stages=[5, 6], k=2, out_dir=tmp_path / "o",
             log=log.append)
    assert any(line.startswith("evaluations take ") for line in log)
    assert any(re.match(r"evaluation \d+ of about \d+, ~\S+ left \(r=224, ", line)
               for line in log)
    again: list[str] = []
    run_rbis(B0, budget, [224], src, Slow(), stages=[5, 6], k=2, out_dir=tmp_path / "o",
             log=again.append)
    assert again[0].startswith(f"resuming {tmp_path / 'o' / 'state.json'}: ")
    assert "values kept from the earlier run" in again[0]
    assert not any(line.startswith("evaluation ") for line in again)   # nothing evaluated
