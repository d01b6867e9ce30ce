"""Zen-Score and tuned Zen-Score: Zen-NAS's computation, determinism, CI, bad input, CLI."""

from __future__ import annotations

import csv
import json
import pickle
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from latency_lab.models.build_torch import build_torch  # noqa: E402
from latency_lab.cli.app import main  # noqa: E402
from latency_lab.network.scaling import add_block  # noqa: E402
from latency_lab.network.spec import NetworkSpec, SpecError  # noqa: E402
from latency_lab.search.evaluators import EvaluatorError, parse_evaluator, run_request  # noqa: E402
from latency_lab.search.zen import _repeat_seed, conv_blocks, without_se  # noqa: E402
from latency_lab.measure.store import Store  # noqa: E402
from latency_lab.measure.store_evaluations import newest_evaluations  # noqa: E402

SMALL = {"name": "small", "resolution": 64, "num_classes": 10, "activation": "swish",
         "stem": {"width": 8, "kernel": 3, "stride": 2}, "head": {"width": 48},
         "stages": [{"width": 8, "depth": 2, "kernel": 3, "expansion": 1, "stride": 1,
                     "se_ratio": 0.25},
                    {"width": 16, "depth": 2, "kernel": 5, "expansion": 4, "stride": 2,
                     "se_ratio": 0.25},
                    {"width": 24, "depth": 2, "kernel": 3, "expansion": 4, "stride": 2,
                     "se_ratio": 0.25}]}


@pytest.fixture
def small() -> NetworkSpec:
    return NetworkSpec.from_dict(SMALL)


def _zen(text, spec, res=64):
    ev = parse_evaluator(text)
    return ev.evaluate(ev.request(spec, res))


def zen_nas_reference(spec, resolution, batch, seed, gamma=0.01, residual=False):
    """Zen-NAS's compute_nas_score, written out as its code does it, on our torch model;
    the draws are taken in the same order from the same generator as the evaluator's."""
    model = build_torch(spec.with_resolution(resolution))
    model.set_residual(residual)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():             # network_weight_gaussian_init
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
                m.momentum = 0.1             # nn.BatchNorm2d's default, as in Zen-NAS
        x = torch.randn((batch, 3, resolution, resolution), generator=g)
        x2 = torch.randn((batch, 3, resolution, resolution), generator=g)
        model.train()
        out = model.forward_features(x)
        mix = model.forward_features(x + gamma * x2)
        score = torch.log(torch.mean(torch.sum(torch.abs(out - mix), dim=[1, 2, 3])))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                score = score + torch.log(torch.sqrt(torch.mean(m.running_var)))
    return float(score)


def test_matches_zen_nas_computation_with_residual_links_removed(small):
    plain = without_se(small)
    r = _zen("zen,batch=4", small)
    ref = zen_nas_reference(plain, 64, 4, _repeat_seed(0, 0))
    assert r.value == pytest.approx(ref, abs=1e-4)       # float32 sums vs our float64 ones
    with_res = zen_nas_reference(plain, 64, 4, _repeat_seed(0, 0), residual=True)
    assert abs(r.value - with_res) > 0.1                 # residual links do change it
    assert r.details["bn_layers"] == 2 + 2 * 2 + 3 * 4   # stem, head; expand only if e != 1
    assert r.details["log_delta"][0] + r.details["log_bn"][0] == pytest.approx(r.value)


def test_same_network_resolution_seed_same_score(small):
    a = _zen("zen,batch=4", small)
    b = _zen("zen,batch=4", small)          # a fresh evaluator and model
    assert abs(a.value - b.value) < 1e-6
    threads = torch.get_num_threads()
    assert abs(_zen("zen,batch=4,threads=1", small).value - a.value) < 1e-6
    assert torch.get_num_threads() == threads      # restored after the evaluation
    assert abs(_zen("zen,batch=4,seed=1", small).value - a.value) > 1e-3
    assert abs(_zen("zen,batch=4", small, res=96).value - a.value) > 1e-3
    ev = parse_evaluator("zen,batch=4")
    req = pickle.loads(pickle.dumps(ev.request(small, 64)))
    assert abs(run_request(req).value - a.value) < 1e-6


def test_repeats_give_mean_and_ci(small):
    r = _zen("zen,batch=4,repeats=4", small)
    values = r.details["repeats"]
    assert r.n == 4 and len(set(values)) == 4
    assert r.value == pytest.approx(sum(values) / 4)
    lo, hi = r.ci
    import statistics
    half = 3.182446305284263 * statistics.stdev(values) / 2    # Student t(0.975, 3), n = 4
    assert lo == pytest.approx(r.value - half) and hi == pytest.approx(r.value + half)
    assert values[0] == pytest.approx(_zen("zen,batch=4", small).value, abs=1e-6)
    assert _zen("zen,batch=4", small).ci is None


def test_tuned_divides_by_conv_blocks(small):
    assert conv_blocks(small) == 2 + 6
    deeper = small.with_stage(2, add_block(add_block(small.stages[2])))
    for spec in (small, deeper):
        z, t = _zen("zen,batch=4", spec), _zen("zen-tuned,batch=4", spec)
        assert t.value == pytest.approx(z.value / conv_blocks(spec), abs=1e-9)
    # plain Zen-Score grows with depth (what the tuned score corrects)
    assert _zen("zen,batch=4", deeper).value > _zen("zen,batch=4", small).value


def test_squeeze_excitation_dropped_unless_kept(small):
    drop, keep = _zen("zen,batch=4", small), _zen("zen,batch=4,se=keep", small)
    assert abs(drop.value - keep.value) > 1e-3
    no_se = without_se(small)
    assert _zen("zen,batch=4,se=keep", no_se).value == pytest.approx(
        _zen("zen,batch=4", no_se).value, abs=1e-6)


@pytest.mark.slow
def test_unusable_scores_and_networks_are_clear_errors(small):
    with pytest.raises(EvaluatorError, match="non-finite Zen-Score"):
        _zen("zen,batch=4,gamma=1e-30", small)   # x_mix == x in float32: log(0)
    # a network that could never be built is refused as a spec, before any evaluator sees it
    with pytest.raises(SpecError, match="do not fit the 2 GiB a TFLite model can hold"):
        small.with_stage(0, replace(small.stages[0], width=2 ** 40))
    if not torch.cuda.is_available():
        with pytest.raises(EvaluatorError, match="sees no CUDA device"):
            parse_evaluator("zen,device=cuda")


def _latency_module(directory):
    (directory / "lat_small.py").write_text(
        "from latency_lab.network.complexity import macs\nfrom latency_lab.network.spec import NetworkSpec\n"
        "def latency_ms(net):\n"
        "    return 1.0 + macs(NetworkSpec.from_dict(net), net['resolution']) / 1e6\n")
    return "py:lat_small:latency_ms"


@pytest.mark.slow
def test_search_and_compare_name_scores_as_scores(small, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.json").write_text(json.dumps(SMALL))
    lat = _latency_module(tmp_path)
    from latency_lab.search.sources import parse_latency_source
    budget = 1.4 * parse_latency_source(lat).latency_ms(small, 64)
    args = ["--network", "small.json", "--budget-ms", f"{budget:.4f}", "--latency", lat,
            "--accuracy", "zen-tuned,batch=4", "--resolutions", "64", "--stages", "1,2",
            "--candidates", "2", "--store", "s.sqlite"]
    assert main(["compare", *args, "--out", "cmp"]) == 0
    result = json.loads((tmp_path / "cmp" / "result.json").read_text())
    assert result["metric"] == "zen_tuned_score" and "accuracy" not in result
    assert "Zen-Score" in result["metric_label"] and result["evaluator"].startswith("zen-tuned")
    assert all("zen_tuned_score" in p and "accuracy" not in p for p in result["per_resolution"])
    with open(tmp_path / "cmp" / "trace.csv", newline="") as f:
        header = next(csv.reader(f))
    assert "zen_tuned_score" in header and "accuracy" not in header
    with open(tmp_path / "cmp" / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "zen_tuned_score" in rows[0] and "accuracy" not in rows[0]
    out = capsys.readouterr().out
    assert "%" not in out.split("wrote")[0]
    n = result["counts"]["evaluations"]
    with Store(tmp_path / "s.sqlite") as store:
        stored = newest_evaluations(store)
    assert len(stored) >= n > 2 and {r["metric"] for r in stored} == {"zen_tuned_score"}
    # the same search again: every score from the cache
    assert main(["search", *args, "--out", "again"]) == 0
    again = json.loads((tmp_path / "again" / "result.json").read_text())
    assert again["counts"]["evaluations"] == 0 and again["network"] == result["network"]
    # a diverging score: one line, exit 2, the earlier evaluations still in the store
    capsys.readouterr()
    args[args.index("zen-tuned,batch=4")] = "zen-tuned,batch=4,gamma=1e-30"
    assert main(["search", *args, "--out", "nan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite Zen-Score" in err[0] and "Traceback" not in err[0]
    with Store(tmp_path / "s.sqlite") as store:
        assert len(newest_evaluations(store)) == len(stored)
