"""A sweep CSV is a latency table; `table show` groups rows by network and resolution."""

from pathlib import Path

import pytest

from latency_lab.network import presets
from latency_lab.cli.app import main
from latency_lab.tables.latency_table import TableError, load_table

RESULTS = Path(__file__).resolve().parents[1] / "results" / "cpu"


def test_a_committed_sweep_csv_loads_as_a_table():
    table = load_table(RESULTS / "efficientnet-b0_sweep_c.csv")
    b0 = presets.get("efficientnet-b0")
    assert len(table) == 61 and table.context.context_key == "cpu-3e5c110fbfd3"
    row = table.row(b0, 224)
    assert row.origin == "sweep" and row.n_samples >= 64 and row.ci_low_ms < row.latency_ms
    mixed = load_table(RESULTS / "presets_224-260.csv")
    assert {r.network for r in mixed.rows} >= {"efficientnet-b1", "efficientnet-b2"}


def test_a_sweep_csv_without_context_or_of_a_custom_network_is_refused(tmp_path, tiny):
    text = (RESULTS / "efficientnet-b0_sweep_c.csv").read_text().splitlines()
    header = text[0].split(",")
    i = header.index("extra")
    stripped = tmp_path / "old.csv"
    import csv
    import io

    rows = list(csv.reader(io.StringIO("\n".join(text))))
    for r in rows:
        del r[i]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    stripped.write_text(buf.getvalue())
    with pytest.raises(TableError, match="no `extra` column"):
        load_table(stripped)
    custom = tmp_path / "custom.csv"
    custom.write_text("\n".join(text).replace("48b9b6d0cd8f7976", tiny.fingerprint))
    with pytest.raises(TableError, match="not a preset"):
        load_table(custom)


def test_table_show_groups_by_network_and_resolution(capsys):
    assert main(["table", "show", str(RESULTS / "latency-table-b0-search.csv")]) == 0
    out = capsys.readouterr().out
    assert "  efficientnet-b0: 6 rows, 1 architecture(s)" in out
    rbis = next(line for line in out.splitlines() if line.startswith("  efficientnet-b0-rbis:"))
    assert "architecture(s)" in rbis
    assert "      240 px" in out and "widths" not in out
    assert main(["table", "show", str(RESULTS / "latency-table-b0-search.csv"), "--rows",
                 "--network", "efficientnet-b0"]) == 0
    assert "widths 16 24 40 80 112 192 320  depths 1 2 2 3 3 4 1" in capsys.readouterr().out
