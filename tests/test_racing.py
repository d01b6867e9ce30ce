"""Racing: an iteration's choice over seeds, its outcomes in the trace, the baseline's spread.

The evaluator here is a registered plugin with a `seeds` option whose draws are a known
function plus seeded Gaussian noise of a chosen size, so every decision can be predicted;
the real training evaluators race the same way (tests/test_training_eval.py).
"""

from __future__ import annotations

import csv
import importlib
import json
import math

import numpy as np
import pytest

from latency_lab.cli.app import main
from latency_lab.measure.store import Store
from latency_lab.network import presets
from latency_lab.search.accuracy_cache import AccuracyCache
from latency_lab.search.evaluators import (EvalResult, Evaluator, Option, parse_evaluator,
                                           register_evaluator)
from latency_lab.search.intervals import mean_ci, overlap, pooled_sd, verdict
from latency_lab.search.racing import score_interval
from latency_lab.search.rbis import Node, run_rbis
from latency_lab.search.sources import PyLatency, network_dict
from search_helpers import linear_module

B0 = presets.get("efficientnet-b0")
EVALUATED: list[tuple[str, int]] = []


class SeededAccuracy(Evaluator):
    """`seeded-test:MODULE:FUNCTION[,seeds=K,sd=S]`: FUNCTION's value plus N(0, S) noise drawn
    from (seed, network, resolution); the value is the mean over the seeds."""

    name = "seeded-test"
    ARG = "MODULE:FUNCTION"
    OPTIONS = {"seeds": Option(int, 1, minimum=1, omit_default=True),
               "sd": Option(float, 1.0, minimum=0), "seed": Option(int, 0, minimum=0)}

    def evaluate(self, request):
        module, _, function = self.arg.partition(":")
        true = getattr(importlib.import_module(module), function)(
            network_dict(request.spec, request.resolution))
        draws = [true + self.options["sd"] * np.random.default_rng(
            [s, int(request.spec.fingerprint, 16) % 2**32, request.resolution]).normal()
            for s in range(self.options["seed"], self.options["seed"] + self.seeds)]
        EVALUATED.append((request.spec.fingerprint, self.seeds))
        mean, ci = mean_ci(draws)
        return EvalResult(mean, len(draws), ci, 0.0, {"seed_values": draws})


@pytest.fixture(autouse=True)
def _registered():
    register_evaluator("seeded-test", SeededAccuracy)
    EVALUATED.clear()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the test's evaluator imports the module in this process; `py:` latencies run in a worker
    # of their own (search/pyworker.py) and no longer put the folder on this process's path
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _search(cwd, sd, max_seeds, out="out", store=None, mod=None):
    mod = mod or linear_module(cwd)
    ev = parse_evaluator(f"seeded-test:{mod}:accuracy,sd={sd}")
    acc = AccuracyCache(Store(store), ev) if store else None
    return run_rbis(B0, 130, [224], PyLatency(f"{mod}:latency_ms"), ev, stages=[3, 6], k=10,
                    out_dir=cwd / out, max_seeds=max_seeds, accuracy_cache=acc)


def _trace(cwd, out="out"):
    with open(cwd / out / "trace.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_intervals_and_verdicts():
    sd, dof = pooled_sd([[1.0, 3.0], [10.0], [5.0, 5.0, 8.0]])
    assert dof == 3 and sd == pytest.approx(math.sqrt((2.0 + 6.0) / 3), rel=1e-12)
    assert pooled_sd([[1.0], [2.0]]) is None
    assert overlap((0, 1), (1, 2)) and not overlap((0, 1), (1.1, 2))
    assert [verdict(v, (80.0, 82.0)) for v in (82.5, 81.0, 79.0)] == ["win", "tie", "below"]
    assert verdict(90.0, None) == "no interval"
    parent = Node(B0, (0,), (0,), latency_ms=10.0, value=70.0)
    slower = Node(B0, (0,), (0,), latency_ms=12.0, value=71.0, ci=(69.0, 73.0))
    assert score_interval(slower, parent) == (0.0, 1.5)       # (max(69-70, 0)/2, (73-70)/2)
    faster = Node(B0, (0,), (0,), latency_ms=9.0, value=71.0, ci=(70.5, 71.5))
    assert score_interval(faster, parent) == (math.inf, math.inf)     # surely preferred


def test_without_noise_every_decision_is_separated_and_nothing_is_raced(cwd):
    res = _search(cwd, sd=0.0, max_seeds=3)
    assert [n.label for n in res.winner.path] == ["baseline", "w6+6", "d3"]  # as without seeds
    decisions = res.winner.decisions
    # iteration 1: no pair fits; of the singles only d3 is within the budget
    assert [d["outcome"] for d in decisions] == ["separated", "none", "single candidate"]
    assert all(d["rounds"] == 0 for d in decisions)
    base = res.winner.path[0]
    assert base.n == 3 and EVALUATED[0] == (B0.fingerprint, 3)   # the baseline's spread
    assert all(n == 1 for _, n in EVALUATED[1:])                 # candidates: one seed each
    assert res.winner.verdict == "win"


def test_noise_larger_than_the_steps_races_to_the_cap_and_calls_it_a_tie(cwd):
    res = _search(cwd, sd=20.0, max_seeds=3)
    d = res.to_dict()
    decisions = res.winner.decisions
    assert decisions and all(x["outcome"] in ("tie at cap", "none", "single candidate")
                             for x in decisions)
    first = decisions[0]
    assert first["outcome"] == "tie at cap" and first["contenders"]
    assert set(first["seeds"].values()) == {3}          # leader and contenders at the cap
    assert d["racing"]["seed_noise"]["dof"] >= 6        # pooled over the raced points
    rows = _trace(cwd)
    chosen = [r for r in rows if r["chosen"] == "True" and r["phase"] == "pair"]
    assert chosen[0]["decision"] == "tie at cap (3 seeds)" and chosen[0]["n"] == "3"
    contenders = [r for r in rows if r["iteration"] == "0" and r["decision"] == "contender"]
    assert len(contenders) == len(first["contenders"])
    assert all(float(r["accuracy_ci_low"]) < float(r["accuracy"]) < float(r["accuracy_ci_high"])
               for r in contenders)
    # the verdict is the winner's value against the baseline's interval (a winner picked from
    # noisy values is biased upwards: a fresh evaluation with new seeds is the honest check)
    base = d["baseline_at_winner_resolution"]
    assert d["verdict"] == verdict(d["accuracy"], base["ci"]) and base["n"] == 3
    summary = (cwd / "out" / "result.json").read_text()
    assert '"verdict"' in summary and '"baseline_at_winner_resolution"' in summary


def test_one_seed_without_a_cap_has_no_interval(cwd):
    res = _search(cwd, sd=1.0, max_seeds=1)
    assert {d["outcome"] for d in res.winner.decisions} <= {"no interval", "none",
                                                           "single candidate"}
    assert res.winner.decisions[0]["outcome"] == "no interval"
    assert res.winner.path[0].n == 1 and all(n == 1 for _, n in EVALUATED)
    assert res.winner.verdict == "no interval"


def test_a_raced_search_resumes_and_reuses_the_store_without_evaluating(cwd):
    store, mod = cwd / "s.sqlite", linear_module(cwd)
    first = _search(cwd, sd=3.0, max_seeds=3, store=store, mod=mod)
    made = len(EVALUATED)
    assert made > 0 and first.cache.evaluations == made
    again = _search(cwd, sd=3.0, max_seeds=3, store=store, mod=mod)   # same --out: the state
    assert len(EVALUATED) == made and again.cache.evaluations == 0
    other = _search(cwd, sd=3.0, max_seeds=3, out="other", store=store, mod=mod)   # the store
    assert len(EVALUATED) == made and other.cache.store_hits > 0
    assert _trace(cwd) == _trace(cwd, "other")
    assert [n.value for n in other.winner.path] == [n.value for n in first.winner.path]


def test_the_cli_shows_spreads_and_the_verdict(cwd, capsys):
    mod = linear_module(cwd)
    assert main(["search", "--network", "efficientnet-b0", "--budget-ms", "130",
                 "--latency", f"py:{mod}:latency_ms", "--accuracy",
                 f"seeded-test:{mod}:accuracy,sd=5", "--stages", "3,6", "--resolutions",
                 "224", "--store", str(cwd / "s.sqlite"), "--out", "o"]) == 0
    out = capsys.readouterr().out
    assert "(n=3)" in out and "baseline 70.0" not in out
    assert ("a tie: inside the baseline's interval" in out
            or "above the baseline's interval" in out)
    md = (cwd / "o" / "summary.md").read_text()
    assert "| resolution | best accuracy | baseline | verdict |" in md
    assert "decisions (racing up to 3 seeds)" in md
    result = json.loads((cwd / "o" / "result.json").read_text())
    assert result["racing"]["max_seeds"] == 3 and result["n"] >= 1
    assert main(["search", "--network", "efficientnet-b0", "--budget-ms", "130",
                 "--latency", f"py:{mod}:latency_ms", "--accuracy", f"seeded-test:{mod}:accuracy",
                 "--max-seeds", "0", "--out", "p"]) == 2

