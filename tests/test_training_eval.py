"""`train:` and `net2net:` evaluators: options, cache keys, lineage, and RBIS end to end."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import torch

from latency_lab.cli.app import main
from latency_lab.errors import UserError
from latency_lab.search.evaluators import Step, parse_evaluator
from latency_lab.search.scaling import DEPTH, WIDTH, rbis_step
from latency_lab.network.spec import NetworkSpec
from latency_lab.training.synth import SynthConfig, generate
from latency_lab.training.train import runs_dir
from search_helpers import write_module

DATA = SynthConfig(classes=3, per_class=8, val_per_class=4, size=32, seed=0)
QUICK = "batch=8,workers=0,progress=false"

# A two-stage network with SE and swish: quick to train, and both kinds of step apply.
NET = {"name": "mini", "resolution": 32, "num_classes": 3, "activation": "swish",
       "stem": {"width": 8, "kernel": 3, "stride": 2}, "head": {"width": 32},
       "stages": [{"width": 12, "depth": 1, "kernel": 3, "expansion": 1, "stride": 1,
                   "se_ratio": 0.25},
                  {"width": 20, "depth": 1, "kernel": 3, "expansion": 4, "stride": 2,
                   "se_ratio": 0.25}]}

LATENCY = """
from latency_lab.network.complexity import macs
from latency_lab.network.spec import NetworkSpec

def latency_ms(net):
    spec = NetworkSpec.from_dict(net)
    return 1.0 + 0.2 * sum(spec.depths) + macs(spec, net["resolution"]) / 1e6
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return generate(DATA, tmp_path_factory.mktemp("eval") / "set")


@pytest.fixture
def mini() -> NetworkSpec:
    return NetworkSpec.from_dict(NET)


def test_options_keys_and_errors(data_dir, tmp_path):
    ev = parse_evaluator(f"train:{data_dir},epochs=3,lr=0.05,{QUICK}")
    assert ev.metric == "accuracy" and ev.unit == "%"
    assert ev.options["epochs"] == 3 and ev.options["opt"] == "sgd"
    key = ev.key()
    assert f"data={ev.data.fingerprint}" in key and str(data_dir) not in key
    assert "epochs=3" in key and "workers" not in key and "threads" not in key
    assert parse_evaluator(ev.describe()).key() == key
    moved = tmp_path / "moved"
    shutil.copytree(data_dir, moved)
    assert parse_evaluator(f"train:{moved},epochs=3,lr=0.05,batch=8").key() == key  # same data
    n2n = parse_evaluator(f"net2net:{data_dir},{QUICK}")
    assert n2n.uses_parent and n2n.options["epochs"] == 2 and n2n.options["base_epochs"] == 10
    assert n2n.key() != parse_evaluator(f"net2net:{data_dir},base_epochs=5").key()
    cases = [(f"train:{tmp_path}/none", "does not exist"), ("train", "needs its DATA_DIR"),
             (f"train:{data_dir},epochs=0", "must be at least 1"),
             (f"train:{data_dir},opt=adam", "choose one of sgd, rmsprop"),
             (f"net2net:{data_dir},base_epochs=x", "not an integer"),
             (f"train:{data_dir},colour=red", "unknown option 'colour'")]
    if not torch.cuda.is_available():
        cases.append((f"train:{data_dir},device=cuda", "sees no CUDA GPU"))
    for text, message in cases:
        with pytest.raises(UserError, match=message):
            parse_evaluator(text)


def test_train_reports_top1_with_its_interval_and_reuses_weights(data_dir, mini):
    ev = parse_evaluator(f"train:{data_dir},epochs=2,{QUICK}")
    result = ev.evaluate(ev.request(mini, 32))
    assert 0 <= result.value <= 100 and result.n == 1
    low, high = result.ci
    assert low <= result.value <= high and high - low > 10      # 12 validation images
    d = result.details
    assert d["val_images"] == 12 and d["epochs"] == 2 and d["recipe"]["epochs"] == 2
    assert d["data"] == ev.data.fingerprint and not d["from_weights_cache"]
    again = parse_evaluator(f"train:{data_dir},epochs=2,{QUICK}").evaluate(ev.request(mini, 32))
    assert again.value == result.value and again.details["from_weights_cache"]


def test_net2net_starts_children_from_their_parents_and_replays_a_lost_lineage(data_dir, mini):
    ev = parse_evaluator(f"net2net:{data_dir},epochs=1,base_epochs=2,{QUICK}")
    base = ev.request(mini, 32)
    wide, counts = rbis_step(mini, mini, (0, 0), WIDTH, (0, 1))
    child = ev.request(wide, 32, base, Step(WIDTH, (0, 1)))
    deep, _ = rbis_step(wide, mini, counts, DEPTH, (1,))
    grandchild = ev.request(deep, 32, child, Step(DEPTH, (1,)))

    b = ev.evaluate(base)
    assert b.details["role"] == "baseline" and b.details["base_epochs"] == 2
    assert b.details["epochs"] == 1 and b.details["transform"]["step"] == "none"   # control
    trained = b.details["transform"]["parent_run"]          # the baseline's 2-epoch training
    c = ev.evaluate(child)
    t = c.details["transform"]
    assert t["exact"] and t["deviation"] < 1e-4 and t["step"] == "w0+1"
    assert t["parent_run"] == trained and c.details["epochs"] == 1    # same start as b
    assert t["widened"] and not t["new_blocks"]
    g = ev.evaluate(grandchild)
    assert g.details["transform"]["parent_run"] == c.details["run"]
    assert g.details["transform"]["new_blocks"] == ["s1.b1"]

    shutil.rmtree(runs_dir())       # weights lost: the lineage is trained again, identically
    replay = parse_evaluator(ev.describe()).evaluate(grandchild)
    assert replay.value == g.value and replay.details["run"] == g.details["run"]
    assert sorted(p.name for p in runs_dir().iterdir()) == sorted(
        [trained, c.details["run"], g.details["run"]])     # the control is not replayed


@pytest.mark.slow
def test_rbis_with_net2net_inherits_weights_along_the_path(data_dir, tmp_path, monkeypatch):
    """A whole search: every evaluated candidate's parent run is the run of the node it was
    stepped from, so weights flow along the chosen path; the store keys by lineage."""
    monkeypatch.chdir(tmp_path)
    mod = write_module(tmp_path, LATENCY)
    (tmp_path / "mini.json").write_text(json.dumps(NET))
    from latency_lab.search.sources import PyLatency

    budget = 1.6 * PyLatency(f"{mod}:latency_ms").latency_ms(NetworkSpec.from_dict(NET), 32)
    store = tmp_path / "store.sqlite"
    args = ["search", "--network", "mini.json", "--budget-ms", f"{budget:.4f}",
            "--latency", f"py:{mod}:latency_ms", "--accuracy",
            f"net2net:{data_dir},epochs=1,base_epochs=1,{QUICK}", "--stages", "0,1",
            "--candidates", "2", "--resolutions", "32", "--store", str(store), "--max-seeds", "1",
            "--out", "out"]
    assert main(args) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["metric"] == "accuracy" and result["evaluator"].startswith("net2net:")
    path = result["per_resolution"][0]["path"]
    assert len(path) >= 3 and path[0]["step"] == "baseline"
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT fingerprint, details, lineage FROM evaluations").fetchall()
    run_of = {fp: json.loads(d)["run"] for fp, d, _ in rows}
    details = [json.loads(d) for _, d, _ in rows]
    assert [d["role"] for d in details].count("baseline") == 1
    # the weights a node's children start from: its own fine-tuning; for the baseline, its
    # training (its value is a control fine-tuned from there)
    base_fp, base_d = next((fp, json.loads(d)) for fp, d, _ in rows
                           if json.loads(d)["role"] == "baseline")
    run_of[base_fp] = base_d["transform"]["parent_run"]
    assert [lin for _, _, lin in rows].count("") == 1      # only the baseline has no lineage
    with open(tmp_path / "out" / "trace.csv", newline="") as f:
        trace = list(csv.DictReader(f))
    path_fps = [r["fingerprint"] for r in trace if r["chosen"] == "True"]   # baseline first
    assert len(path_fps) == len(path)
    parents = {d["transform"]["parent_run"] for d in details if d["role"] == "fine-tuned"}
    path_runs = [run_of[fp] for fp in path_fps]
    assert set(path_runs[:-1]) <= parents <= set(path_runs)   # children of path nodes only
    # the search again: every value from the accuracy cache, nothing trained
    assert main(args[:-2] + ["--out", "again"]) == 0
    again = json.loads((tmp_path / "again" / "result.json").read_text())
    assert again["counts"]["evaluations"] == 0 and again["accuracy"] == result["accuracy"]


def test_cli_bad_data_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["search", "--network", "mbconv-tiny", "--budget-ms", "5", "--latency", "cpu",
               "--accuracy", f"train:{empty}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "has no class folders" in err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:An input array is constant")   # 12 val images: ties
def test_proxy_ranking_of_the_tiny_preset_by_training_evaluators(data_dir, tmp_path):
    """The ranking study's candidates for mbconv-tiny, ranked by train: and net2net: (one
    epoch each on a 3-class set of 24 images: checks the plumbing, not the ranking)."""
    from benchmark_helpers import load_benchmark

    pr = load_benchmark("proxy_ranking")
    cands = pr.candidates("mbconv-tiny", 16)
    assert [c[0] for c in cands] == list(pr.CANDIDATES) and cands[-1][2] == 80
    assert len({c[1].fingerprint for c in cands}) == 11     # r: the baseline itself
    texts = [f"train:{data_dir},epochs=1,{QUICK}", f"train:{data_dir},epochs=2,{QUICK}",
             f"net2net:{data_dir},epochs=1,base_epochs=1,{QUICK}"]
    rankings, about = pr.evaluate_all(texts, tmp_path / "s.sqlite", log=lambda m: None,
                                      network="mbconv-tiny", r_step=16)
    ref = pr.reference(rankings)
    assert ref.startswith("train:") and "epochs=2" in ref
    assert all(len(rankings[n][1]) == 11 and min(rankings[n][1]) == 1 for n in rankings)
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        rows = [json.loads(d) for (d,) in db.execute(
            "SELECT details FROM evaluations WHERE evaluator_key LIKE 'net2net%'")]
    fine = [d for d in rows if d["role"] == "fine-tuned"]
    assert len(rows) == len(fine) == 11          # the baseline is trained, not ranked
    assert len({d["transform"]["parent_run"] for d in fine}) == 1   # all from one baseline
    assert all(d["transform"]["exact"] for d in fine)
    tau, rho = pr.correlations(rankings)
    pr.write_outputs(tmp_path, rankings, about, tau, rho, {"when": "now", "load": [0, 0, 0]},
                     "mbconv-tiny", 16, "tiny")
    assert "Kendall tau against the longest training" in (tmp_path / "tiny.md").read_text()

