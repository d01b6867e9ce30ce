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
    # two rankings of one evaluator (its mean and its first draw) keep apart, and two recipes
    # that differ in their warm-up or seeds too
    assert (pr._short("train:d,epochs=1,seeds=3,warmup=0.2 (first draw)")
            == "train: epochs=1, warmup=0.2, seeds=3 (first draw)")
    assert pr._short("train:d,epochs=3,seeds=3") == "train: epochs=3, seeds=3"


def test_the_same_rankings_when_evaluated_in_worker_processes(pr, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = "py:benchmarks.analytic_sources:accuracy"
    local, _ = pr.evaluate_all([text], tmp_path / "a.sqlite", log=lambda m: None)
    pooled, about = pr.evaluate_all([text], tmp_path / "b.sqlite", log=lambda m: None,
                                    executor="local:2")
    assert pooled == local and about[f"{text} [SYNTHETIC]"]["evaluated_now"] == 11


@pytest.mark.slow
def test_bootstrap_over_seeds_and_the_pairs_a_reference_separates(pr):
    from benchmarks.ranking_seeds import bootstrap, separated_pairs

    ref = [[float(10 * i), 10 * i + 0.5, 10 * i - 0.5] for i in range(11)]   # well apart
    same = [[x + 0.1 for x in d] for d in ref]
    b = bootstrap(same, ref, n_boot=200)
    assert b["tau"] == [1.0, 1.0, 1.0] and b["rho"][0] == pytest.approx(1.0)
    noisy = [[10 * i + 40 * s for s in (-1, 0, 1)] for i in range(11)]      # noise >> steps
    b = bootstrap(noisy, ref, n_boot=400, seed=1)
    assert b["tau"][0] == pytest.approx(1.0) and b["tau"][1] < 0.8 < b["tau"][2] <= 1.0
    one = bootstrap(noisy, ref, n_boot=400, seed=1, k=1)
    assert one["tau"][0] < b["tau"][0]             # one seed ranks worse than three
    sep = separated_pairs(ref)
    assert sep["pairs"] == 55 and sep["own_t"] == 55 and sep["pooled"] == 55
    assert sep["dof"] == 22 and sep["pooled_sd"] == pytest.approx(0.5)
    assert separated_pairs(noisy)["pooled"] < 20


@pytest.mark.slow
def test_the_reference_table_with_costs(pr):
    ref = [[float(i), i + 0.2, i - 0.2] for i in range(11)]
    rankings = {"train:x,epochs=6": (None, list(range(11, 0, -1))),
                "zen": (None, list(range(11, 0, -1)))}
    about = {"train:x,epochs=6": {"epochs": 6, "draws": ref,
                                  "cost": {"epochs_per_candidate_seed": 6.0,
                                           "seconds_per_candidate_seed": 300.0}},
             "zen": {"epochs": None, "draws": [[i + 0.01 * j for j in range(8)] for i in range(11)],
                     "cost": {"epochs_per_candidate_seed": 0.0,
                              "seconds_per_candidate_seed": 3.0}}}
    md, out = pr.against_reference(rankings, about)
    z = out["evaluators"]["zen"]
    assert z["tau"][0] == pytest.approx(1.0) and z["cost_ratio_seconds"] == pytest.approx(0.01)
    assert z["meets_aim"] and z["one_draw"] is not None
    assert any("| zen | 8 |" in line for line in md)
    assert "separates 55 of its 55 candidate pairs" in md[-1]


def test_rbis_vs_compound_calls_a_difference_inside_the_noise_a_tie(tmp_path):
    from benchmark_helpers import load_benchmark

    bench = load_benchmark("rbis_vs_compound")
    methods = {"baseline": [80.0, 80.4, 79.6], "rbis": [82.0, 82.5, 81.5],
               "compound": [81.5, 82.6, 81.0]}
    compare = {"budget_ms": 0.2, "latency_source": "cpu", "evaluator": "train:x,epochs=1",
               "metric": "accuracy", "methods": {}}
    for m, seeds in methods.items():
        compare["methods"][m] = {"latency_ms": 0.1, "resolution": 32, "fingerprint": m,
                                 "widths": "1", "depths": "1", "accuracy": 70.0}
        (tmp_path / f"long-{m}.json").write_text(json.dumps({
            "value": sum(seeds) / 3, "ci": [0, 100], "n": 3, "evaluator": "train:x,seeds=3",
            "details": {"seed_values": seeds}}))
    (tmp_path / "compare.json").write_text(json.dumps(compare))
    r = bench.analyse(tmp_path, list(methods))
    d = r["differences"]
    assert set(d) == {"rbis - compound", "rbis - baseline", "compound - baseline"}
    assert d["rbis - compound"]["diff"] == pytest.approx(0.3) and not d["rbis - compound"][
        "beyond_noise"]
    assert d["rbis - baseline"]["beyond_noise"] and d["rbis - baseline"]["ci"][0] > 0
    assert 2 < d["rbis - baseline"]["dof"] <= 4      # Welch: between n - 1 and 2(n - 1)
    bench.write(tmp_path, r)
    assert "| rbis - compound | +0.30 |" in (tmp_path / "verdict.md").read_text()
