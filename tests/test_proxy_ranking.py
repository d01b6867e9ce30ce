"""benchmarks/proxy_ranking.py: the 11 candidates, rankings and correlations, through the cache."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pr():
    spec = importlib.util.spec_from_file_location("proxy_ranking",
                                                  ROOT / "benchmarks" / "proxy_ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_candidates_are_the_thesis_single_steps(pr):
    from latency_lab import presets

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


def test_the_same_rankings_when_evaluated_in_worker_processes(pr, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = "py:benchmarks.analytic_sources:accuracy"
    local, _ = pr.evaluate_all([text], tmp_path / "a.sqlite", log=lambda m: None)
    pooled, about = pr.evaluate_all([text], tmp_path / "b.sqlite", log=lambda m: None,
                                    executor="local:2")
    assert pooled == local and about[f"{text} [SYNTHETIC]"]["evaluated_now"] == 11
