"""The accuracy cache in the SQLite store: reuse across searches, --reevaluate, export/show."""

from __future__ import annotations

import csv
import json

import pytest

from latency_lab.network import presets
from latency_lab.cli.app import main
from latency_lab.search.sources import PyLatency
from latency_lab.measure.store import Store
from latency_lab.measure.store_evaluations import newest_evaluations
from search_helpers import nonlinear_module

B0 = presets.get("efficientnet-b0")


@pytest.fixture
def mod(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return nonlinear_module(tmp_path)


def _search(mod, out, *extra, accuracy=None, command="search"):
    budget = 1.3 * PyLatency(f"{mod}:latency_ms").latency_ms(B0, 224)
    rc = main([command, "--budget-ms", f"{budget:.3f}", "--latency", f"py:{mod}:latency_ms",
               "--accuracy", accuracy or f"py:{mod}:accuracy", "--resolutions", "224,240",
               "--candidates", "4", "--store", "s.sqlite", "--out", out, *extra])
    assert rc == 0
    with open(f"{out}/result.json") as f:
        return json.load(f)


@pytest.mark.slow
def test_second_search_evaluates_nothing_and_reevaluate_forces(mod, tmp_path, capsys):
    first = _search(mod, "o1")
    n = first["counts"]["evaluations"]
    assert n > 5 and first["counts"]["accuracy_cache_hits"] == 0
    with Store(tmp_path / "s.sqlite") as store:
        rows = newest_evaluations(store)
    assert len(rows) == n and {r["metric"] for r in rows} == {"accuracy"}
    assert all(r["evaluator"] == f"py:{mod}:accuracy" for r in rows)

    second = _search(mod, "o2")              # another --out: only the store is shared
    assert second["counts"]["evaluations"] == 0
    assert second["counts"]["accuracy_cache_hits"] == n
    assert second["network"] == first["network"] and second["accuracy"] == first["accuracy"]
    assert (tmp_path / "o1" / "trace.csv").read_text() == (tmp_path / "o2" / "trace.csv").read_text()

    third = _search(mod, "o3", "--reevaluate")
    assert third["counts"]["evaluations"] == n and third["counts"]["accuracy_cache_hits"] == 0
    with Store(tmp_path / "s.sqlite") as store:
        assert store.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 2 * n
        assert len(newest_evaluations(store)) == n          # newest per key; the old rows stay
    assert "0 taken from the accuracy cache" in capsys.readouterr().out


@pytest.mark.slow
def test_editing_the_function_invalidates_its_values(mod, tmp_path):
    n = _search(mod, "o1")["counts"]["evaluations"]
    src = tmp_path / f"{mod}.py"
    src.write_text(src.read_text() + "\n# edited\n")
    import sys
    sys.modules.pop(mod, None)
    assert _search(mod, "o2")["counts"]["evaluations"] == n


@pytest.mark.slow
def test_export_reads_back_as_a_table(mod, tmp_path, capsys):
    live = _search(mod, "live", command="compare")
    assert main(["accuracy", "export", "acc.csv", "--store", "s.sqlite"]) == 0
    with open(tmp_path / "acc.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # RBIS's evaluations plus the baseline families' members that RBIS did not meet
    assert len(rows) >= live["counts"]["evaluations"] > 5
    assert {"fingerprint", "resolution", "metric", "value", "evaluator_key"} <= set(rows[0])
    replay = _search(mod, "replay", accuracy="table:acc.csv", command="compare")
    # the same network (its provenance names the other evaluator), the same value
    same = lambda d: {k: v for k, v in d.items() if k != "source"}  # noqa: E731
    assert same(replay["network"]) == same(live["network"])
    assert replay["accuracy"] == live["accuracy"]
    assert (tmp_path / "replay" / "compare.csv").read_text().splitlines()[1:] == \
        (tmp_path / "live" / "compare.csv").read_text().splitlines()[1:]
    # table values are read, not evaluated: nothing new in the store
    with Store(tmp_path / "s.sqlite") as store:
        assert len(newest_evaluations(store)) == len(rows)
    capsys.readouterr()
    assert main(["accuracy", "show", "--store", "s.sqlite"]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} evaluations" in out and f"py:{mod}:accuracy;v1;src=" in out


@pytest.mark.slow
def test_export_needs_one_evaluator(mod, tmp_path, capsys):
    _search(mod, "a")
    other = nonlinear_module(tmp_path)
    _search(mod, "b", accuracy=f"py:{other}:accuracy")
    capsys.readouterr()
    assert main(["accuracy", "export", "x.csv", "--store", "s.sqlite"]) == 2
    err = capsys.readouterr().err
    assert "several evaluators" in err and not (tmp_path / "x.csv").exists()
    assert main(["accuracy", "export", "x.csv", "--store", "s.sqlite",
                 "--evaluator", f"py:{other}:accuracy"]) == 0
    with open(tmp_path / "x.csv", newline="") as f:
        assert {r["evaluator"] for r in csv.DictReader(f)} == {f"py:{other}:accuracy"}
    assert main(["accuracy", "show", "--store", "s.sqlite", "--evaluator", "zen"]) == 2
    assert "no evaluations by 'zen'" in capsys.readouterr().err
    assert main(["accuracy", "show", "--store", "missing.sqlite"]) == 2


def test_a_failing_evaluation_keeps_the_finished_ones(mod, tmp_path, capsys):
    budget = 1.3 * PyLatency(f"{mod}:latency_ms").latency_ms(B0, 224)
    rc = main(["search", "--budget-ms", f"{budget:.3f}", "--latency", f"py:{mod}:latency_ms",
               "--accuracy", f"py:{mod}:nan_after_baseline", "--resolutions", "224",
               "--store", "s.sqlite", "--out", "bad"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and "returned nan" in err[-1]
    with Store(tmp_path / "s.sqlite") as store:
        rows = newest_evaluations(store)
    # the baseline and the width candidates scored before the first depth step hit NaN
    with open(tmp_path / "bad" / "trace.csv", newline="") as f:
        done = {r["fingerprint"] for r in csv.DictReader(f) if r["accuracy"] != ""}
    assert B0.fingerprint in done and len(done) > 1
    assert {r["fingerprint"] for r in rows} == done and len(rows) == len(done)
