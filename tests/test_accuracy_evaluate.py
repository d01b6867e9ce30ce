"""`latency-lab accuracy evaluate`: one evaluation, cached, with its spread; seeds=K."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency_lab.cli.app import main
from latency_lab.training.synth import SynthConfig, generate

QUICK = "batch=8,workers=0,progress=false"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return generate(SynthConfig(classes=3, per_class=8, val_per_class=4, size=32),
                    tmp_path_factory.mktemp("ev") / "set")


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_one_evaluation_as_json_then_from_the_cache(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    args = ["accuracy", "evaluate", "mbconv-tiny", "--accuracy", "zen,repeats=3,batch=4",
            "--resolution", "32", "--store", store, "--json"]
    assert main(args) == 0
    first = _json(capsys)
    assert {"value", "n", "ci", "seconds", "evaluator", "metric"} <= set(first)
    assert first["n"] == 3 and first["ci"][0] < first["value"] < first["ci"][1]
    assert first["metric"] == "zen_score" and first["resolution"] == 32
    assert first["evaluator"].startswith("zen,") and not first["cached"]
    assert main(args) == 0
    again = _json(capsys)
    assert again["cached"] and again["value"] == first["value"]
    assert main(["accuracy", "show", "--store", store, "--network", "mbconv-tiny"]) == 0
    assert "1 evaluations" in capsys.readouterr().out
    assert main(args + ["--reevaluate"]) == 0 and not _json(capsys)["cached"]


def test_the_text_output_names_the_metric_and_marks_synthetic_values(tmp_path, capsys):
    assert main(["accuracy", "evaluate", "mbconv-tiny", "--accuracy", "synthetic",
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mbconv-tiny (") and "at 64 px: SYNTHETIC accuracy" in out
    assert "no interval" in out and "evaluated now" in out


@pytest.mark.parametrize("args, message", [
    (["no-such-net", "--accuracy", "synthetic"], "no-such-net"),
    (["mbconv-tiny", "--accuracy", "nope"], "unknown accuracy evaluator 'nope'"),
    (["mbconv-tiny", "--accuracy", "synthetic", "--resolution", "0"], "resolution"),
    (["mbconv-tiny", "--accuracy", "train:/nowhere"], "does not exist"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, args, message):
    store = tmp_path / "s.sqlite"
    assert main(["accuracy", "evaluate", *args, "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and message in err
    assert not store.exists()


@pytest.mark.slow
def test_seeds_average_trainings_and_more_seeds_train_only_the_new_ones(data_dir, tmp_path,
                                                                       capsys):
    base = ["accuracy", "evaluate", "mbconv-tiny", "--resolution", "32", "--store",
            str(tmp_path / "s.sqlite"), "--json", "--accuracy"]
    text = f"train:{data_dir},epochs=1,{QUICK}"
    assert main(base + [text + ",seeds=2"]) == 0
    two = _json(capsys)
    d = two["details"]
    assert two["n"] == 2 and d["seeds"] == [0, 1] and len(d["runs"]) == 2
    assert two["value"] == pytest.approx(sum(d["seed_values"]) / 2)
    assert "Student-t" in d["ci"] and two["ci"][0] <= two["value"] <= two["ci"][1]
    assert "seeds=2" in two["evaluator_key"]
    capsys.readouterr()
    assert main(base + [text + ",seeds=3"]) == 0
    captured = capsys.readouterr()
    three = json.loads(captured.out)
    assert three["details"]["seed_values"][:2] == d["seed_values"]
    assert captured.err.count("epoch(s) -> top-1") == 1       # only the third seed trained
    assert main(base + [text]) == 0                            # seeds=1: seed 0, cached run
    one = _json(capsys)
    assert one["n"] == 1 and one["value"] == d["seed_values"][0]
    assert "seeds" not in one["evaluator_key"] and "Wilson" in one["details"]["ci"]
