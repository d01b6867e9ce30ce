"""Values at the edges are one line before any work, never a traceback (issue 25): integral
floats such as 1e308 in a network, NaN and infinite cache sizes, a py: function returning
10**400, negative seeds, result files whose parts are lists, stage fields the blocks
contradict."""

from __future__ import annotations

import json

import pytest

from latency_lab.cli.app import main
from latency_lab.network.spec import NetworkSpec, SpecError
from latency_lab.search.evaluators import parse_evaluator
from latency_lab.search.sources import SourceError, parse_latency_source


def _one_line(capsys, rc: int, needle: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err


@pytest.mark.parametrize("path", [("stages", 0, "width"), ("stem", "width"), ("head", "width"),
                                  ("stages", 1, "depth"), ("num_classes",), ("resolution",)])
def test_integral_floats_beyond_any_network_are_refused(tiny, path):
    d = tiny.to_dict()
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = 1e308
    d["stages"][1].pop("blocks")
    with pytest.raises(SpecError, match="must be an integer of at most 2,147,483,647, got 1e"):
        NetworkSpec.from_dict(d)


def test_stage_fields_that_its_blocks_contradict_are_refused(tiny):
    d = tiny.to_dict()
    d["stages"][1]["kernel"] = 3            # its first block has 5
    with pytest.raises(SpecError, match="stage 1: kernel 3 but its first block has 5"):
        NetworkSpec.from_dict(d)
    assert NetworkSpec.from_dict(tiny.to_dict()) == tiny    # what to_dict writes agrees


@pytest.mark.parametrize("args, needle", [
    (["cache", "prune", "--max-mb", "nan"], "--max-mb must be a finite number"),
    (["cache", "prune", "--max-mb", "-inf"], "--max-mb must be >= 0, got -inf"),
    (["cache", "prune", "--max-mb", "-1"], "--max-mb must be >= 0"),
    (["cache", "prune", "--all", "--max-mb", "10"], "give --all (remove every model) or --max-mb"),
])
def test_cache_sizes_at_the_edges(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path))
    _one_line(capsys, main(args), needle)


@pytest.mark.parametrize("value, ok", [("nan", False), ("abc", False), ("-1", False), ("0", False),
                                       ("inf", True), ("1e308", True), ("512", True)])
def test_the_cache_cap_variable_is_checked_before_any_command(tmp_path, monkeypatch, capsys,
                                                              value, ok):
    from latency_lab.models.cache import max_bytes

    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("LATENCY_LAB_CACHE_MAX_MB", value)
    rc = main(["network", "list"])
    if ok:
        assert rc == 0 and max_bytes() >= 512 * 2 ** 20
        capsys.readouterr()
    else:
        _one_line(capsys, rc, "LATENCY_LAB_CACHE_MAX_MB=")


def test_a_py_function_returning_an_enormous_integer_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.py").write_text("def f(net):\n    return 10**400\n")
    from latency_lab.network.presets import get

    b0 = get("efficientnet-b0")
    with pytest.raises(SourceError, match="returned an integer of 401 digits for efficientnet-b0"):
        parse_latency_source("py:big:f").latency_ms(b0, 224)
    ev = parse_evaluator("py:big:f")
    with pytest.raises(SourceError, match="returned an integer of 401 digits"):
        ev.evaluate(ev.request(b0, 224))


@pytest.mark.parametrize("args", [
    ["dataset", "synth", "--out", "d", "--seed", "-1"],
    ["dataset", "show", "d", "--split-seed", "-1"],
    ["lut", "record", "--seed", "-1"],
])
def test_negative_seeds_are_usage_errors(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    _one_line(capsys, main(args), "--")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["train:d,seed=99999999999999999999",
                                  "train:d,batch=99999999999999999999",
                                  "train:d,seeds=2147483648", "zen,seed=2147483648",
                                  "net2net:d,epochs=99999999999999999999"])
def test_integer_evaluator_options_beyond_int32_are_one_line(tmp_path, monkeypatch, text):
    """train:'s seed=10**20 was a ValueError from torch's int64 generator and batch=10**20 one
    from itertools.islice; every integer option is at most 2**31-1 unless it says otherwise."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    with pytest.raises(SourceError, match=r"option \w+='\d+': must be at most 2147483647$"):
        parse_evaluator(text)


@pytest.mark.parametrize("doc, key", [
    ({"network": None, "per_resolution": [[224, 1]]}, "224"),
    ({"methods": [1]}, ""),
    ({"network": [1]}, ""),
    ({"network": {}, "per_resolution": [{"resolution": 64, "network": [1]}]}, "64"),
])
def test_result_files_whose_parts_are_lists(tmp_path, capsys, doc, key):
    (tmp_path / "r.json").write_text(json.dumps(doc))
    rc = main(["network", "show", f"{tmp_path / 'r.json'}" + (f"#{key}" if key else "")])
    _one_line(capsys, rc, "r.json")
