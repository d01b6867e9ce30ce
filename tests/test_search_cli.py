"""`latency-lab search | scale | compare` end to end on synthetic py: sources, and bad input."""

from __future__ import annotations

import csv
import json

import pytest

from latency_lab.cli.app import main
from latency_lab.search.sources import PyLatency, SourceError, parse_latency_source
from search_helpers import nonlinear_module
from latency_lab.network import presets

B0 = presets.get("efficientnet-b0")


@pytest.fixture
def mod(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return nonlinear_module(tmp_path)


def _budget(mod, factor=1.35):
    return f"{factor * PyLatency(f'{mod}:latency_ms').latency_ms(B0, 224):.3f}"


@pytest.mark.slow
def test_search_writes_result_trace_and_plot(mod, tmp_path, capsys):
    rc = main(["search", "--network", "efficientnet-b0", "--budget-ms", _budget(mod),
               "--latency", f"py:{mod}:latency_ms", "--accuracy", f"py:{mod}:accuracy",
               "--resolutions", "224,240", "--stages", "3,4,5,6", "--candidates", "4",
               "--out", "out"])
    assert rc == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["resolution"] in (224, 240) and result["latency_ms"] <= float(_budget(mod))
    assert [p["resolution"] for p in result["per_resolution"]] == [224, 240]
    assert result["stages"] == [3, 4, 5, 6] and result["candidates_k"] == 4
    assert result["network"]["resolution"] == result["resolution"]
    with open(tmp_path / "out" / "trace.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"resolution", "iteration", "dimension", "stages", "latency_ms", "accuracy", "score",
            "chosen"} <= set(rows[0])
    assert sum(r["kept"] == "True" for r in rows if r["iteration"] == "0"
               and r["resolution"] == "224" and r["phase"] == "pair") == 4
    png = (tmp_path / "out" / "paths.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "winner:" in capsys.readouterr().out


@pytest.mark.slow
def test_resolutions_from_candidates_csv(mod, tmp_path):
    (tmp_path / "candidates.csv").write_text("resolution,latency_ms,why\n240,1,before\n224,1,x\n")
    assert main(["search", "--budget-ms", _budget(mod), "--latency", f"py:{mod}:latency_ms",
                 "--accuracy", f"py:{mod}:accuracy", "--resolutions-from", "candidates.csv",
                 "--out", "o"]) == 0
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["resolutions"] == [224, 240] and result["stages"] == [2, 3, 4, 5, 6]


@pytest.mark.slow
def test_compare_writes_table_and_plot(mod, tmp_path):
    rc = main(["compare", "--budget-ms", _budget(mod, 1.5), "--latency", f"py:{mod}:latency_ms",
               "--accuracy", f"py:{mod}:accuracy", "--resolutions", "224,240,256",
               "--out", "cmp"])
    assert rc == 0
    with open(tmp_path / "cmp" / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["baseline", "rbis", "compound", "fast", "rs"]
    assert all(float(r["latency_ms"]) <= float(_budget(mod, 1.5)) for r in rows)
    rs = next(r for r in rows if r["method"] == "rs")
    assert rs["widths"] == " ".join(map(str, B0.widths))     # rs keeps width
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    assert (tmp_path / "cmp" / "result.json").exists()


@pytest.mark.slow
def test_scale_prints_and_writes(mod, tmp_path, capsys):
    assert main(["scale", "--method", "compound", "--budget-ms", _budget(mod, 1.8),
                 "--latency", f"py:{mod}:latency_ms", "--out", "c.json"]) == 0
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["method"] == "compound" and d["latency_ms"] <= float(_budget(mod, 1.8))
    assert d["resolution"] % 4 == 0 and d["x"] > 0
    assert "compound (dwr)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--budget-ms", "1"], "below the baseline's latency at every resolution"),
    (["--stages", "2,9"], "unknown stage index 9"),
    (["--accuracy", "py:{mod}:raises"], "raised RuntimeError: trainer crashed"),
    (["--accuracy", "py:{mod}:nan_after_baseline"], "returned nan"),
    (["--accuracy", "table:acc.csv"], "has no row for network"),
    (["--latency", "py:{mod}:nope"], "has no function 'nope'"),
    (["--accuracy", "zenn"], "unknown accuracy evaluator 'zenn'"),
    (["--accuracy", "zen,bach=16"], "unknown option 'bach'"),
    (["--accuracy", "zen,batch=x"], "option batch='x' is not an integer"),
    (["--accuracy", "zen-tuned,se=maybe"], "choose one of drop, keep"),
    (["--accuracy", "zen:foo"], "takes no argument"),
    (["--accuracy", "py"], "needs its MODULE:FUNCTION"),
])
def test_bad_input_one_line_exit_2_trace_kept(mod, tmp_path, capsys, args, message):
    (tmp_path / "acc.csv").write_text(f"fingerprint,resolution,accuracy\n{B0.fingerprint},224,76.7\n")
    base = {"--budget-ms": _budget(mod), "--latency": f"py:{mod}:latency_ms",
            "--accuracy": f"py:{mod}:accuracy", "--resolutions": "224", "--out": "bad"}
    base.update(zip(args[::2], (a.format(mod=mod) for a in args[1::2])))
    rc = main(["search"] + [x for kv in base.items() for x in kv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    if message in ("raised RuntimeError: trainer crashed", "returned nan", "has no row for network"):
        with open(tmp_path / "bad" / "trace.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and rows[0]["phase"] == "baseline"
        assert (tmp_path / "bad" / "state.json").exists()


def test_py_source_gets_the_json_dict_with_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "probe_src.py").write_text(   # it runs in a worker process: it tells by a file
        "import json\ndef f(net):\n    open('seen.json', 'w').write(json.dumps(net))\n"
        "    return 1.5\ndef bad(net):\n    return -1\n")
    src = parse_latency_source("py:probe_src:f")
    assert src.latency_ms(B0, 256) == 1.5 and src.describe() == "py:probe_src:f"
    net = json.loads((tmp_path / "seen.json").read_text())
    assert net["resolution"] == 256 and net["stages"][3]["width"] == 80
    assert net["stages"][3]["depth"] == 3 and net["head"] == {"width": 1280} and "stem" in net
    with pytest.raises(SourceError, match="finite positive"):
        parse_latency_source("py:probe_src:bad").latency_ms(B0, 224)
    with pytest.raises(SourceError, match="no module 'no_such_module_xyz'"):
        parse_latency_source("py:no_such_module_xyz:f")
    with pytest.raises(SourceError, match="lacks its PATH"):
        parse_latency_source("table:")


@pytest.mark.slow
def test_result_files_feed_back_in_with_their_provenance(mod, tmp_path, capsys):
    """search's result.json, scale's --out and compare's compare.json are networks wherever a
    network is taken, and say they were scaled, from what, by which method."""
    budget = _budget(mod, 1.4)
    lat, acc = f"py:{mod}:latency_ms", f"py:{mod}:accuracy"
    assert main(["search", "--budget-ms", budget, "--latency", lat, "--accuracy", acc,
                 "--resolutions", "224:240:16", "--candidates", "3", "--out", "s"]) == 0
    result = json.loads((tmp_path / "s" / "result.json").read_text())
    assert result["resolutions"] == [224, 240]        # start:stop:step, as for sweep
    capsys.readouterr()
    assert main(["network", "show", "s/result.json", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["stages"] == result["network"]["stages"]
    assert shown["source"].startswith("RBIS: efficientnet-b0 (48b9b6d0cd8f7976) scaled to")
    assert f"py:{mod}:latency_ms" in shown["source"]
    assert main(["network", "show", "s/result.json#224"]) == 0
    assert "RBIS: efficientnet-b0" in capsys.readouterr().out
    assert main(["scale", "--method", "compound", "--budget-ms", budget, "--latency", lat,
                 "--out", "c.json"]) == 0
    capsys.readouterr()
    assert main(["network", "show", "c.json", "--json"]) == 0
    scaled = json.loads(capsys.readouterr().out)
    assert scaled["source"].startswith("compound scaling (dwr) of efficientnet-b0 (48b9b6d0")
    assert main(["compare", "--budget-ms", budget, "--latency", lat, "--accuracy", acc,
                 "--resolutions", "224", "--candidates", "3", "--out", "cmp"]) == 0
    capsys.readouterr()
    assert main(["network", "show", "cmp/compare.json"]) == 2
    assert "holds 5 networks (baseline, rbis, compound, fast, rs)" in capsys.readouterr().err
    assert main(["network", "show", "cmp/compare.json#fast", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"].startswith("fast scaling (dWr)")


@pytest.mark.slow
def test_a_chain_of_latency_sources_falls_back_for_what_the_first_lacks(mod, tmp_path, capsys):
    """--latency A --latency B: B answers what A lacks; trace.csv says who answered what,
    summary.md has baseline vs winner with the evaluator."""
    (tmp_path / "partial.py").write_text(
        "import importlib\n"
        f"full = importlib.import_module({mod!r})\n"
        "def latency_ms(net):\n"
        "    if net['stages'][6]['width'] > 320:\n"
        "        raise KeyError('not recorded')\n"
        "    return full.latency_ms(net)\n")
    assert main(["search", "--budget-ms", _budget(mod, 1.4), "--latency", "py:partial:latency_ms",
                 "--latency", f"py:{mod}:latency_ms", "--accuracy", "synthetic",
                 "--resolutions", "224", "--candidates", "3", "--out", "o"]) == 0
    out, err = capsys.readouterr()
    assert "latency sources: py:partial:latency_ms answered" in err and "lacked" in err
    with open(tmp_path / "o" / "trace.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    origin = {r["latency_from"] for r in rows}
    assert origin == {"py:partial:latency_ms", f"py:{mod}:latency_ms"}
    assert all(r["latency_from"] == f"py:{mod}:latency_ms" for r in rows
               if int(r["widths"].split()[6]) > 320)
    # the synthetic evaluator is said to be synthetic everywhere
    assert "SYNTHETIC accuracy" in out and "winner:" in out
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["accuracy_synthetic"] is True and result["evaluator"] == "synthetic"
    summary = (tmp_path / "o" / "summary.md").read_text()
    assert "accuracy values are SYNTHETIC" in summary and "| parameters | 5,288,548 |" in summary
    assert "RBIS winner" in summary and "| MACs | 0.386 G |" in summary
    # a device anywhere but last is refused
    assert main(["search", "--budget-ms", "10", "--latency", "cpu", "--latency",
                 f"py:{mod}:latency_ms", "--accuracy", "synthetic", "--out", "x"]) == 2
    assert "only be the last" in capsys.readouterr().err


def test_protocol_options_over_the_protocol_defaults():
    """What a command's protocol options give: Protocol's defaults where a user gave none, and
    --max-rounds alone below the minimum lowers the minimum to it."""
    from latency_lab.cli.options import protocol
    from latency_lab.measure.protocol import Protocol

    p = Protocol()
    assert protocol(p, p.ci_target_pct, p.min_rounds, p.max_rounds) == p
    assert protocol(p, 2.0, 4, 12) == Protocol(ci_target_pct=2.0, min_rounds=4, max_rounds=12)
    q = protocol(p, 2.5, p.min_rounds, 3)       # --max-rounds below the default minimum
    assert (q.min_rounds, q.max_rounds, q.ci_target_pct) == (3, 3, 2.5)
    assert protocol(p, p.ci_target_pct, p.min_rounds, 20).min_rounds == p.min_rounds
    assert protocol(p, 1.0, 8, 100, None, 60.0).time_cap_s == 60.0
