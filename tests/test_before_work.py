"""What a command will need is checked before it works, and what it cannot use is not silently
accepted (issue 25): a resumable state with negative latencies, a builder for a format that
has one, a data set without validation images, a Ray Client address that cannot be one or
where nothing listens."""

from __future__ import annotations

import json
import socket
import time

import pytest

from latency_lab.cli.app import main
from latency_lab.scaleout.executors import ExecutorError, parse_executor


def _one_line(capsys, rc: int, needle: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) >= 1 and needle in err[-1], err
    return err[-1]


@pytest.mark.slow   # two searches of a tiny network (py: workers)
def test_a_state_with_negative_latencies_is_not_resumed_from(tmp_path, tiny, monkeypatch,
                                                             capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text("def lat(net):\n    return 8.0 + sum(s['width'] for s in "
                                   "net['stages']) / 1000\ndef acc(net):\n    return 70.0\n")
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    args = ["search", "--budget-ms", "8.05", "--latency", "py:m:lat", "--accuracy", "py:m:acc",
            "--network", "tiny.json", "--resolutions", "64", "--out", "so", "--store", "s.sqlite"]
    assert main(args) == 0
    capsys.readouterr()
    state = json.loads((tmp_path / "so" / "state.json").read_text())
    state["latency_ms"] = {k: -v for k, v in state["latency_ms"].items()}
    (tmp_path / "so" / "state.json").write_text(json.dumps(state))
    before = (tmp_path / "so" / "trace.csv").read_bytes()
    for f in tmp_path.glob("s.sqlite*"):       # no store (nor its -wal): none may be made
        f.rename(tmp_path / f"kept{f.name[1:]}")
    line = _one_line(capsys, main(args), "not a finite positive number")
    assert "search state" in line and "delete it to start over" in line
    assert (tmp_path / "so" / "trace.csv").read_bytes() == before
    # checked before a store is opened (after issue 24's split it came after: a new store)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("s.sqlite")]


@pytest.mark.parametrize("fmt, out", [("onnx", "x.onnx"), ("keras", "x.keras"),
                                      ("torch", "x.pt2")])
def test_a_builder_for_a_format_with_one_builder_is_refused(tmp_path, capsys, fmt, out):
    rc = main(["network", "export", "efficientnet-b0", "--format", fmt, "--builder", "keras",
               "--out", str(tmp_path / out)])
    _one_line(capsys, rc, "--builder keras applies to --format tflite only")
    assert list(tmp_path.iterdir()) == []


def test_a_data_set_without_validation_images_is_refused_before_it_is_made(tmp_path, capsys):
    rc = main(["dataset", "synth", "--out", str(tmp_path / "d"), "--val-per-class", "0"])
    _one_line(capsys, rc, "--val-per-class must be in 1..100000, got 0")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("ray://h:99999", "port 99999 is not in 1..65535"), ("ray://h:0", "port 0 is not in"),
    ("ray://bad host:10001", "'bad host' is not a host name"),
    ("ray://h:10001/x", "give the Ray Client address as ray://HOST:PORT"),
    ("ray://:10001", "give the Ray Client address"), ("ray://h", "give the Ray Client address"),
])
def test_ray_client_addresses_are_checked_before_connecting(text, message):
    with pytest.raises(ExecutorError, match=message):
        parse_executor(text)
    assert parse_executor("ray://[::1]:10001").address == "ray://[::1]:10001"


def test_a_ray_client_address_where_nothing_listens_is_one_line_at_once(capsys, tmp_path):
    """Ray Client waited 30 s and warned in three lines; the probe says it in one."""
    pytest.importorskip("ray")
    with socket.socket() as s:        # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "m.py").write_text("def f(net):\n    return 5.0\n")
    t = time.monotonic()
    rc = main(["search", "--budget-ms", "9", "--latency", f"py:{tmp_path / 'm.py'}:f",
               "--accuracy", f"py:{tmp_path / 'm.py'}:f", "--out", str(tmp_path / "so"),
               "--store", str(tmp_path / "s.sqlite"), "--executor", f"ray://127.0.0.1:{port}"])
    line = _one_line(capsys, rc, f"cannot reach 127.0.0.1:{port} (Connection refused)")
    assert "ray start --head" in line and time.monotonic() - t < 20


@pytest.mark.parametrize("table, needle", [("missing.csv", "no latency table at missing.csv"),
                                           ("bad.csv", "lacks column(s)")])
def test_a_latency_scale_table_is_read_before_a_store_is_opened(tmp_path, tiny, monkeypatch,
                                                                capsys, table, needle):
    """issue 23's --latency-scale was read after the accuracy cache and the device opened the
    store: a table that could not be read left a new store."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text("def acc(net):\n    return 70.0\n")
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    (tmp_path / "bad.csv").write_text("resolution,latency_ms\n64,1.0\n")
    rc = main(["search", "--budget-ms", "9", "--latency", "conftest:CurveDevice", "--accuracy",
               "py:m:acc", "--network", "tiny.json", "--resolutions", "64", "--out", "so",
               "--store", "s.sqlite", "--latency-scale", table])
    line = _one_line(capsys, rc, needle)
    assert line.startswith("error: --latency-scale: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "m.py", "tiny.json"]
