"""The candidate policy: few resolutions, chosen with the budget and the network, each kept or
dropped with its reason (latency_lab.sweeps.candidates, `jumps --budget-ms`, `search
--resolutions-from`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from latency_lab.network import presets
from latency_lab.sweeps.candidates import (cheapest_step, kept, network_step_cost, propose, select)
from latency_lab.cli.app import main
from latency_lab.network.complexity import macs
from latency_lab.errors import JumpInputError
from latency_lab.network.scaling import add_block, widen

B0 = presets.get("efficientnet-b0")
GRID = np.arange(160, 401, 4)


def staircase():
    """An H100-like curve (7.5 ms at 160 px to ~40 ms at 400): a jump after every multiple of
    16 from 176 to 384, +6% after multiples of 32 and +3% after the others (14 jumps)."""
    lat = 7.5 * (GRID / 160.0) ** 1.75
    steps = [r for r in range(176, 385, 16)]
    for at in steps:
        lat = lat * np.where(GRID > at, 1.06 if at % 32 == 0 else 1.03, 1.0)
    jumps = pd.DataFrame({
        "resolution_before": steps, "resolution_after": [r + 4 for r in steps],
        "jump_pct": [6.0 if r % 32 == 0 else 3.0 for r in steps]})
    # a little variation so that the ranking is strict: larger jumps at higher resolution
    jumps["jump_pct"] += np.linspace(0, 0.5, len(steps))
    return lat, jumps


def test_cheapest_step_is_the_smallest_single_stage_step():
    cost = cheapest_step(B0, 224)
    base = macs(B0, 224)
    ratios = []
    for i in (2, 3, 4, 5, 6):
        s = B0.stages[i]
        ratios += [macs(B0.with_stage(i, widen(s, s.width, 0)), 224) / base,
                   macs(B0.with_stage(i, add_block(s)), 224) / base]
    assert cost.ratio == pytest.approx(min(ratios)) and 1.0 < cost.ratio < 1.02
    assert cost.label == "width step on stage 6 (+1.0% MACs)"      # 320 -> 352 channels at 7x7
    # only the stages RBIS scales count
    assert cheapest_step(B0, 224, (1,)).ratio > cost.ratio


def test_a_staircase_gives_four_candidates_under_the_budget_with_reasons():
    lat, jumps = staircase()
    proposals = propose(jumps, GRID, lat)
    assert len(proposals) == 14 and set(proposals["role"]) == {"before-jump"}
    # budget: the baseline at 288 fits with room for a step, the one at 304 has none
    at = dict(zip(GRID, lat))
    step = network_step_cost(B0)
    budget = at[304] * 1.005          # 304 fits itself but not with its +1% cheapest step
    assert at[288] * step(288).ratio < budget < at[304] * step(304).ratio
    cands = select(proposals, budget_ms=budget, step_cost=step)
    assert len(cands) == 14 and cands["kept"].sum() == 4
    why = cands.set_index("resolution")["reason"]
    assert "dropped: no room for one scaling step" in why[304]
    assert "width step on stage 6 (+1.1% MACs)" in why[304]
    assert "already over the budget" in why[320] and "already over the budget" in why[384]
    # the rest ranked by jump size: the +6% jumps (after multiples of 32) come first, and of
    # those the largest
    assert kept(cands) == [192, 224, 256, 288]
    assert "kept: jump size rank 1 of 8" in why[288]
    assert "dropped: jump size rank 5 of 8, only the best 4" in why[272]
    assert cands.loc[cands["kept"], "after_step_ms"].le(budget).all()
    # kept rows first, then every dropped one
    assert list(cands["kept"]) == [True] * 4 + [False] * 10
    # 0 keeps everything that fits; no budget ranks all 14
    assert len(kept(select(proposals, budget, max_candidates=0, step_cost=step))) == 8
    assert kept(select(proposals, max_candidates=2)) == [352, 384]


def test_a_candidates_table_read_back_is_selected_again(tmp_path):
    """What `jumps` wrote can be re-selected for another budget (the search does this)."""
    lat, jumps = staircase()
    path = tmp_path / "candidates.csv"
    select(propose(jumps, GRID, lat), max_candidates=4).to_csv(path, index=False)
    again = select(pd.read_csv(path), budget_ms=dict(zip(GRID, lat))[260] * 1.02,
                   step_cost=network_step_cost(B0), max_candidates=3)
    assert kept(again) == [192, 224, 256]
    assert not any("|" in r.split(" | ")[0] for r in again["reason"])
    with pytest.raises(JumpInputError, match="budget must be positive"):
        select(pd.read_csv(path), budget_ms=0)


def test_jumps_command_with_budget_and_network(tmp_path, capsys):
    lat, _ = staircase()
    src = tmp_path / "sweep.csv"
    pd.DataFrame({"resolution": GRID, "latency_ms": lat, "network": "efficientnet-b0"}).to_csv(
        src, index=False)
    budget = dict(zip(GRID, lat))[304] * 1.005
    assert main(["jumps", str(src), "--out", str(tmp_path / "j"), "--no-plot",
                 "--budget-ms", f"{budget:.4f}", "--max-candidates", "3"]) == 0
    out = capsys.readouterr().out
    cands = pd.read_csv(tmp_path / "j" / "candidates.csv")
    assert len(kept(cands)) == 3 and max(kept(cands)) <= 288
    assert f"candidates: {', '.join(map(str, kept(cands)))} (" in out
    assert cands["reason"].str.contains("no room for one scaling step").any()
    # a network that is not the swept one is refused; an unknown one is a note
    pd.DataFrame({"resolution": GRID, "latency_ms": lat, "fingerprint": B0.fingerprint}).to_csv(
        src, index=False)
    assert main(["jumps", str(src), "--out", str(tmp_path / "k"), "--no-plot", "--budget-ms",
                 "30", "--network", "efficientnet-b1"]) == 2
    assert "is not the network of this sweep" in capsys.readouterr().err
    assert main(["jumps", str(src), "--out", str(tmp_path / "k"), "--no-plot", "--budget-ms",
                 "30"]) == 0
    assert "only the baseline latency is checked" in capsys.readouterr().out


def test_search_reselects_a_candidates_csv_for_its_budget(tmp_path, monkeypatch):
    """`search --resolutions-from candidates.csv` applies the policy with the search's own
    budget and network, writes its decisions, and searches only what it kept."""
    from search_helpers import nonlinear_module

    monkeypatch.chdir(tmp_path)
    mod = nonlinear_module(tmp_path)
    from latency_lab.search.sources import PyLatency

    src = PyLatency(f"{mod}:latency_ms")
    res = [224, 240, 256, 272, 288]
    lat = np.array([src.latency_ms(B0, r) for r in res])
    jumps = pd.DataFrame({"resolution_before": res, "resolution_after": [r + 4 for r in res],
                          "jump_pct": [2.0, 5.0, 3.0, 4.0, 6.0]})
    select(propose(jumps, np.array(res), lat), max_candidates=0).to_csv("candidates.csv",
                                                                        index=False)
    budget = 1.3 * src.latency_ms(B0, 224)
    assert lat[-1] > budget > lat[2]          # 272 and 288 are over it
    assert main(["search", "--budget-ms", f"{budget:.3f}", "--latency", f"py:{mod}:latency_ms",
                 "--accuracy", f"py:{mod}:accuracy", "--resolutions-from", "candidates.csv",
                 "--max-candidates", "2", "--stages", "5,6", "--out", "o"]) == 0
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["resolutions"] == [240, 256]         # the two largest jumps that fit
    decided = pd.read_csv(tmp_path / "o" / "candidates.csv").set_index("resolution")
    assert "over the budget" in decided.at[288, "reason"]
    assert "rank 3 of 3" in decided.at[224, "reason"]
