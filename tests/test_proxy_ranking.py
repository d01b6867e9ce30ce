"""benchmarks/proxy_ranking.py: the 11 candidates, rankings and correlations, through the cache."""

from __future__ import annotations

from benchmark_helpers import ROOT, load_benchmark
import json

import pytest



@pytest.fixture(scope="module")
def pr():
    return load_benchmark("proxy_ranking")


def test_candidates_are_the_thesis_single_steps(pr):
    from latency_lab.network import presets

    b0 = presets.get("efficientnet-b0")
    cands = pr.candidates()
    assert [c[0] for c in cands] == list(pr.CANDIDATES)
    assert len({(c[1].fingerprint, c[2]) for c in cands}) == 11
    w2, d5, r = cands[1], cands[9], cands[10]
    assert w2[1].widths[3] == 88 and w2[1].depths == b0.depths and w2[2] == 224
    assert d5[1].depths[6] == 2 and d5[1].widths == b0.widths
    assert r[1].fingerprint == b0.fingerprint and r[2] == 240


def test_rankings_and_correlations(pr, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = "py:benchmarks.analytic_sources:accuracy"
    rankings, about = pr.evaluate_all([text], tmp_path / "s.sqlite", log=lambda m: None)
    name = f"{text} [SYNTHETIC]"
    values, ranks = rankings[name]
    assert sorted(ranks) == list(range(1, 12))
    assert ranks[values.index(max(values))] == 1 and ranks[values.index(min(values))] == 11
    tau, rho = pr.correlations(rankings)
    ft, nt = "thesis FT (full training)", "thesis NT (net transformation)"
    assert tau[ft][nt] == pytest.approx(0.60) and tau[name][name] == pytest.approx(1.0)
    assert rho[ft][nt] == pytest.approx(0.7545, abs=1e-4)
    # a second run takes every value from the accuracy cache
    _, again = pr.evaluate_all([text], tmp_path / "s.sqlite", log=lambda m: None)
    assert about[name]["evaluated_now"] == 11 and again[name]["evaluated_now"] == 0
    pr.write_outputs(tmp_path, rankings, about, tau, rho, {"when": "now", "load": [0, 0, 0]})
    saved = json.loads((tmp_path / "proxy_ranking.json").read_text())
    assert saved["kendall_tau"][ft][nt] == pytest.approx(0.60)
    assert (tmp_path / "proxy_ranking.png").stat().st_size > 10_000
    assert "[SYNTHETIC]" in (tmp_path / "proxy_ranking.md").read_text()


def test_separability_counts_only_disjoint_intervals(pr):
    cis = [(10.0, 20.0), (15.0, 25.0), (21.0, 30.0), (40.0, 50.0)]
    # disjoint: (0,2) (0,3) (1,3) (2,3); (0,1) and (1,2) overlap
    assert pr.separable_pairs(cis) == 4
    rankings = {"train:x,epochs=2": (list(range(11)), list(range(11, 0, -1)))}
    about = {"train:x,epochs=2": {"ci95": [(v - 5.0, v + 5.0) for v in range(11)]}}
    line = pr.separability(rankings, about)[-1]
    assert "spread 10.00" in line and "median interval width 10.00" in line
    assert "0 of 55 pairs disjoint" in line      # every interval overlaps its neighbours
    assert pr.separability(rankings, {"zen": {"ci95": None}}) == []


def test_short_labels_name_a_training_evaluator_by_its_epochs(pr):
    assert pr._short("train:/data/set,epochs=10,seed=0,workers=1") == "train: epochs=10"
    assert pr._short("net2net:d,epochs=1,base_epochs=8") == "net2net: base_epochs=8, epochs=1"
    assert pr._short("thesis FT (full training)") == "thesis FT (full training)"


def test_the_same_rankings_when_evaluated_in_worker_processes(pr, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = "py:benchmarks.analytic_sources:accuracy"
    local, _ = pr.evaluate_all([text], tmp_path / "a.sqlite", log=lambda m: None)
    pooled, about = pr.evaluate_all([text], tmp_path / "b.sqlite", log=lambda m: None,
                                    executor="local:2")
    assert pooled == local and about[f"{text} [SYNTHETIC]"]["evaluated_now"] == 11
