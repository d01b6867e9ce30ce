"""The README's search against the committed recorded files works at any budget from B0's
latency to B2's: the latency table of one live search first, the B0 -> B2-space LUT for what
the table lacks. Nothing is measured (replay only), so this runs in seconds."""

import json
from pathlib import Path

import pytest

from latency_lab.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "results" / "cpu" / "latency-table-b0-search.csv"
LUT = ROOT / "results" / "cpu" / "lut-efficientnet-b0-to-b2.json"
B0_MS, B2_MS = 12.1, 28.4    # B0 at 224 in the table; B2 at 260 (results/benchmarks/sweep_benchmark)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [B0_MS, 17.0, 20.549, 25.0, B2_MS])
def test_readme_search_works_at_budgets_from_b0_to_b2(budget, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--budget-ms", str(budget), "--resolutions", "224:288:16",
                 "--accuracy", "synthetic", "--latency", f"table:{TABLE}",
                 "--latency", f"lut:{LUT}", "--out", "o"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["latency_ms"] <= budget and result["accuracy_synthetic"] is True
    assert "latency sources: table answered" in err
    assert (tmp_path / "o" / "summary.md").is_file()
    # the winner feeds back in
    assert main(["network", "show", "o/result.json"]) == 0
    assert "RBIS: efficientnet-b0" in capsys.readouterr().out
