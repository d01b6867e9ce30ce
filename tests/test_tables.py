"""Latency tables: store -> file -> store -> table device round trip, and every bad input."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

from dataclasses import replace

import pytest

from latency_lab.cli.app import main
from latency_lab.measure.api import DeviceError, DeviceInfo, get_device
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.network.scaling import widen
from latency_lab.measure.store import Store
from latency_lab.tables.latency_table import (COLUMNS, TableError, export_table, import_table, load_table)

PHONE = DeviceInfo(name="pixel2", hardware="Pixel 2", runtime="tflite-benchmark",
                   runtime_version="2.16", threads=1, extra={"governor": "performance"})
HOST = DeviceInfo(name="cpu", hardware="test host", runtime="litert", runtime_version="2.3.0",
                  threads=None, affinity="0")


def _measure(store, info, spec, resolution, base_ms):
    """A finished measurement with known samples, through the store's real write path."""
    mid = store.open_measurement(info, spec, resolution)
    for r in range(6):
        store.add_samples(mid, r, [base_ms + 0.01 * k + 0.001 * r for k in range(5)])
    store.finish(mid, "ci_target")
    return store.measurement(mid)


@pytest.fixture
def wide(tiny):
    wider = replace(tiny, name="tiny-wide")
    return wider.with_stage(1, widen(tiny.stages[1], tiny.stages[1].width, 4))  # 16 -> 24


@pytest.fixture
def store(tmp_path, tiny, wide):
    with Store(tmp_path / "s.sqlite") as s:
        for res, ms in ((64, 1.0), (96, 2.0)):
            _measure(s, PHONE, tiny, res, ms)
            _measure(s, HOST, tiny, res, ms / 4)
        _measure(s, PHONE, wide, 64, 1.5)
        yield s


@pytest.fixture
def phone_csv(tmp_path, store):
    path = tmp_path / "phone.csv"
    export_table(store, path, device="pixel2")
    return path


def test_round_trip_store_csv_store_table_device(tmp_path, store, tiny, wide, phone_csv):
    table = load_table(phone_csv)
    assert len(table) == 3 and list(table.contexts) == [PHONE.context_key]
    m = store.measurement(store.latest(PHONE.context_key, tiny.fingerprint, 96)[0])
    row = table.row(tiny, 96)
    assert row.latency_ms == pytest.approx(m.latency_ms)
    assert (row.ci_low_ms, row.ci_high_ms, row.n_samples) == pytest.approx(
        (m.stats.ci_low_ms, m.stats.ci_high_ms, 30))
    assert row.context == PHONE and row.origin == "measured"

    with Store(tmp_path / "other.sqlite") as other:
        assert import_table(phone_csv, other) == 3
        # imported rows are summaries: no measurement or sample is made up from them
        assert other.latest(PHONE.context_key, tiny.fingerprint, 96) is None
        assert other.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0
        again = export_table(other, tmp_path / "again.csv")
    assert [r.origin for r in again.rows] == ["imported"] * 3
    assert [(r.key, r.latency_ms, r.ci_low_ms, r.n_samples, r.measured_at) for r in again.rows] \
        == [(r.key, r.latency_ms, r.ci_low_ms, r.n_samples, r.measured_at) for r in table.rows]

    dev = get_device(f"table:{tmp_path / 'again.csv'}")
    assert dev.recorded_context == PHONE
    # replayed figures live under their own context, never under the phone's
    assert dev.info().context_key != PHONE.context_key
    assert dev.info().extra["table_of_context"] == PHONE.context_key
    run = dev.sample(wide, 64, runs=10)
    assert run.summary_only and run.samples_ms == (pytest.approx(1.5 + 0.02 + 0.0025, abs=0.003),)
    # the whole measurement API runs on the recording, and keeps what was recorded: the
    # CI and sample count of each row, not one constant sampled again and again
    with Store(tmp_path / "replay.sqlite") as replay:
        ms = measure_points(dev, [(tiny, 64), (wide, 64)], replay, Protocol(min_rounds=2))
        assert replay.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0
    for m, (spec, res) in zip(ms, [(tiny, 64), (wide, 64)]):
        row = table.row(spec, res)
        assert (m.latency_ms, m.stats.ci_low_ms, m.stats.ci_high_ms, m.stats.count) == \
            pytest.approx((row.latency_ms, row.ci_low_ms, row.ci_high_ms, 30))
        assert m.stop_reason == "replayed" and m.context == dev.info()
        r = m.row()
        assert r["n_samples"] == 30 and r["ci_low_ms"] == pytest.approx(row.ci_low_ms)
        assert r["summary_only"] and r["stop_reason"] == "replayed"


def test_one_replay_path_for_sweeps_and_searches(tmp_path, phone_csv, tiny, monkeypatch):
    """`--latency table:PATH` is the table device behind the search's device source: the same
    lookup, the recorded CI kept, no store opened; a sweep over `--device table:PATH` writes
    the recorded CIs and sample counts to its CSV."""
    import pandas as pd

    from latency_lab.search.sources import DeviceLatency, parse_latency_source

    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    table = load_table(phone_csv)
    with parse_latency_source(f"table:{phone_csv}") as src:
        assert isinstance(src, DeviceLatency) and src.store is None
        assert src.latency_many([(tiny, 64), (tiny, 96)]) == pytest.approx(
            [table.latency_ms(tiny, 64), table.latency_ms(tiny, 96)])
        m = src.measurement(tiny, 96)
        assert (m.stats.ci_low_ms, m.stats.count) == pytest.approx(
            (table.row(tiny, 96).ci_low_ms, 30))
        assert src.describe().startswith(f"table:{phone_csv} (Pixel 2, table(tflite-benchmark)")
        with pytest.raises(DeviceError, match="no latency for network tiny .* at resolution 80"):
            src.latency_ms(tiny, 80)
    assert not (tmp_path / "cache").exists()

    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    out = tmp_path / "replayed.csv"
    assert main(["sweep", "--device", f"table:{phone_csv}", "--network", str(net),
                 "--resolutions", "64,96", "--out", str(out), "--no-jumps",
                 "--store", str(tmp_path / "s2.sqlite")]) == 0
    df = pd.read_csv(out)
    assert list(df["n_samples"]) == [30, 30] and set(df["stop_reason"]) == {"replayed"}
    assert list(df["ci_high_ms"]) == pytest.approx(
        [table.row(tiny, r).ci_high_ms for r in (64, 96)], abs=1e-4)


def test_export_filters_and_prefers_measured_over_imported(tmp_path, store, tiny, wide,
                                                            phone_csv):
    t = export_table(store, tmp_path / "t.csv", network=wide.fingerprint)
    assert [(r.network, r.resolution) for r in t.rows] == [(wide.name, 64)]
    t = export_table(store, tmp_path / "h.csv", device=HOST.context_key[:8])
    assert {r.context.name for r in t.rows} == {"cpu"} and len(t) == 2
    with pytest.raises(TableError, match="nothing to export.*'jetson'.*pixel2"):
        export_table(store, tmp_path / "n.csv", device="jetson")
    import_table(phone_csv, store)   # same keys as the store's own measurements
    rows = export_table(store, tmp_path / "both.csv").rows
    assert len(rows) == 5 and {r.origin for r in rows} == {"measured"}


def test_missing_network_or_resolution_is_named(tmp_path, phone_csv, tiny):
    dev = get_device("table", path=str(phone_csv))
    with pytest.raises(DeviceError, match=r"no latency for network tiny \(fingerprint "
                                          rf"{tiny.fingerprint}\) at resolution 80; .* 64, 96"):
        dev.sample(tiny, 80, 1)
    other = tiny.with_stage(0, widen(tiny.stages[0], 8, 5))
    with pytest.raises(DeviceError, match=f"no rows for network tiny \\(fingerprint "
                                          f"{other.fingerprint}\\) at any resolution"):
        dev.sample(other, 64, 1)


def test_mixed_and_foreign_contexts_are_refused(tmp_path, store, tiny):
    both = tmp_path / "both.csv"
    export_table(store, both)
    with pytest.raises(DeviceError, match="mixes 2 device contexts"):
        get_device("table", path=str(both))
    with pytest.raises(TableError, match="mixes 2 device contexts"):
        load_table(both, context=PHONE)
    dev = get_device("table", path=str(both), context="cpu")
    assert dev.recorded_context == HOST and dev.sample(tiny, 64, 1).samples_ms[0] < 0.3
    phone_only = tmp_path / "phone.csv"
    export_table(store, phone_only, device="pixel2")
    with pytest.raises(TableError, match="from another device context: .*pixel2.*not "
                                         f"{HOST.context_key}"):
        load_table(phone_only, context=HOST)
    with pytest.raises(TableError, match="no rows for device context jetson"):
        load_table(both).for_context("jetson")


def _edit(path, column, value, row=0):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[row][column] = value(rows[row][column]) if callable(value) else value
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _bump_width(text):
    d = json.loads(text)
    d["stages"][1]["width"] += 4
    return json.dumps(d)


@pytest.mark.parametrize("edit, message", [
    (lambda p: _edit(p, "latency_ms", "fast"), r"line 2: latency_ms 'fast' is not a number"),
    (lambda p: _edit(p, "latency_ms", ""), r"line 2: latency_ms is empty"),
    (lambda p: _edit(p, "n_samples", "2.5"), r"n_samples .2.5. is not a positive count"),
    (lambda p: _edit(p, "latency_ms", "99"), r"latency_ms 99.0 lies outside its CI"),
    (lambda p: _edit(p, "network_json", _bump_width),
     r"line 2: network_json has fingerprint \w+ but the fingerprint column says"),
    (lambda p: _edit(p, "network_json", lambda t: t[:40]), r"network_json is not valid JSON"),
    (lambda p: _edit(p, "threads", "4"), r"device fields hash to context .*hand-edited"),
    (lambda p: _edit(p, "extra", "[1, 2]"), r"extra must be a JSON object"),
    (lambda p: _edit(p, "resolution", "5"), r"resolution 5 outside"),
    (lambda p: _edit(p, "format_version", "7"), r"format_version 7; this tool reads 1"),
    (lambda p: p.write_text(p.read_text() + p.read_text().splitlines()[1] + "\n"),
     r"line 5: duplicate of line 2 \(same context"),
    (lambda p: p.write_text(p.read_text()[:-60]), r"truncated"),
    (lambda p: p.write_text(p.read_text().replace(",std_ms,", ",stdev,", 1)),
     r"lacks column\(s\): std_ms"),
    (lambda p: p.write_text(""), r"is empty"),
    (lambda p: p.write_bytes(pickle.dumps({"latency_ms": 1.0})), r"table .*"),
])
def test_bad_tables_are_refused_with_the_problem_named(phone_csv, edit, message):
    edit(phone_csv)
    with pytest.raises(TableError, match=message):
        load_table(phone_csv)


def test_optional_spread_may_be_empty_but_never_invented(phone_csv, tiny):
    _edit(phone_csv, "p95_ms", "")
    row = load_table(phone_csv).rows[0]
    assert row.p95_ms != row.p95_ms  # NaN: unknown stays unknown


def test_parquet_needs_pyarrow_or_round_trips(tmp_path, store):
    path = tmp_path / "t.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(TableError, match="pyarrow is not installed"):
            export_table(store, path)
        return
    written = export_table(store, path)
    assert [r.record() for r in load_table(path).rows] == [r.record() for r in written.rows]


def test_cli_export_show_import(tmp_path, capsys, store, tiny):
    db = str(store.path)
    out = tmp_path / "cli.csv"
    assert main(["table", "export", str(out), "--store", db, "--device", "pixel2"]) == 0
    assert "3 rows, 2 network(s), 1 device context(s)" in capsys.readouterr().out
    assert list(load_table(out).records()[0]) == list(COLUMNS)
    assert main(["table", "show", str(out), "--network", "tiny", "--rows"]) == 0
    shown = capsys.readouterr().out
    assert PHONE.context_key in shown and shown.count(tiny.fingerprint) == 2
    assert main(["table", "import", str(out), "--store", str(tmp_path / "n.sqlite")]) == 0
    assert "imported 3 summary rows" in capsys.readouterr().out
    _edit(out, "latency_ms", "abc")
    assert main(["table", "show", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: table") and "'abc' is not a number" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_table_commands_do_not_import_tensorflow(phone_csv):
    code = ("import sys; from latency_lab.cli.app import main;"
            f"main(['table', 'show', {str(phone_csv)!r}]);"
            "print('HEAVY', [m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'torch')"
            " if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
