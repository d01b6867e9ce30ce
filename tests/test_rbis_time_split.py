"""benchmarks/rbis_time_split.py: the committed RBIS run's log read back, and the split it reports."""

from __future__ import annotations

from benchmark_helpers import ROOT, load_benchmark
import json
import sqlite3

RUN = ROOT / "results" / "cpu" / "rbis-tiny-net2net"


def module():
    return load_benchmark("rbis_time_split")


def test_the_committed_run_log_is_read_back():
    log = module().from_log((RUN / "run.log").read_text())
    assert log["wall_s"] == 3451.78 and round(log["cpu_s"], 2) == 1160.54
    assert log["trainings"] == 39 and log["epochs"] == 2 * 8 + 37     # two baselines, 37 fine-tunes
    assert 1300 < log["training_s"] < 1340 and log["loads"] == [9.03, 7.41]


def test_store_figures_and_the_report(tmp_path):
    m = module()
    db = tmp_path / "s.sqlite"
    with sqlite3.connect(db) as c:
        c.executescript("CREATE TABLE samples (latency_ms REAL); CREATE TABLE measurements "
                        "(fingerprint TEXT); CREATE TABLE evaluations (seconds REAL);")
        c.executemany("INSERT INTO samples VALUES (?)", [(2.0,)] * 500)
        c.executemany("INSERT INTO measurements VALUES (?)", [("a",), ("a",), ("b",)])
        c.execute("INSERT INTO evaluations VALUES (12.5)")
    store = m.from_store(db)
    assert store == {"samples": 500, "sampled_s": 1.0, "latency_reads": 3, "models": 2,
                     "evaluations": 1, "evaluation_s": 12.5}
    log = {"wall_s": 600.0, "cpu_s": 300.0, "trainings": 2, "training_s": 240.0, "epochs": 3,
           "loads": [4.0, 5.0]}
    cost = {"wall_s": 3.0, "cpu_s": 3.0, "all_wall_s": [3.0], "load": 4.0}
    out = {"log": log, "store": store, "network": "n", "fingerprint": "f", "when": "now",
           "model_costs": {"keras": cost, "keras_first": {**cost, "cpu_s": 9.0},
                           "direct": {**cost, "cpu_s": 0.01}}}
    md = m.report(out, "run")
    assert "10.0 min wall, 5.0 min of CPU time" in md and "50% of one core" in md
    assert "4.0 min wall (40%)" in md and "6.0 min wall (60%)" in md
    assert "2 x 3.0 s + 1 TensorFlow imports = 0.2 min" in md     # 2 x 3 + (9 - 3) = 12 s
    json.dumps(out)
