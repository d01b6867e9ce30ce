"""The RBIS driver: hand-solved cases, every rule of the trace, caching, resume."""

from __future__ import annotations

import csv
import json
import math
from itertools import combinations_with_replacement

import pytest

from latency_lab.network import presets
from latency_lab.search.evaluators import Evaluator
from latency_lab.search.recorded import PyEvaluator, TableEvaluator
from latency_lab.search.rbis import (ResolutionResult, Node, SearchError, pick_winner, run_rbis, score)
from latency_lab.search.sources import PyLatency, SourceError
from search_helpers import linear_module, nonlinear_module

B0 = presets.get("efficientnet-b0")


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sources(mod):
    return PyLatency(f"{mod}:latency_ms"), PyEvaluator(f"{mod}:accuracy")


def test_hand_solved_two_stages(cwd):
    # Stages 3 and 6. Iteration 0 (width): {3,3}, {3,6}, {6,6} all cost 16 ms; accuracies
    # +1.6, +2.4, +3.2 -> {6,6} (w6 = 384). Iteration 1 (depth): every pair exceeds 130 ms;
    # single steps: d3 -> 126 ms (+1.0), d6 -> 136 ms (over) -> take d3 and stop.
    src, ev = _sources(linear_module(cwd))
    res = run_rbis(B0, 130, [224], src, ev, stages=[3, 6], k=10, out_dir=cwd / "out")
    best = res.winner.best
    assert best.spec.widths[3] == 80 and best.spec.widths[6] == 384
    assert best.spec.depths[3] == 4 and best.spec.depths[6] == 1
    assert best.latency_ms == pytest.approx(126) and best.value == pytest.approx(74.2)
    assert [n.label for n in res.winner.path] == ["baseline", "w6+6", "d3"]
    assert "one stage" in res.winner.reason
    out = json.loads((cwd / "out" / "result.json").read_text())
    assert out["resolution"] == 224 and out["latency_ms"] == pytest.approx(126)
    assert out["network"]["stages"][6]["width"] == 384


def test_k_keeps_lowest_latency_with_lexicographic_ties(cwd):
    # Same case with K = 1: all three pairs tie at 116 ms, so only {3,3} (first in
    # lexicographic order) is kept and evaluated, and chosen although {6,6} would score more.
    src, ev = _sources(linear_module(cwd))
    res = run_rbis(B0, 130, [224], src, ev, stages=[3, 6], k=1)
    best = res.winner.best
    assert [n.label for n in res.winner.path] == ["baseline", "w3+3", "d3"]
    assert best.spec.widths[3] == 96 and best.value == pytest.approx(72.6)
    rows = [r for r in res.trace if r["iteration"] == 0]
    assert [r["stages"] for r in rows] == ["3+3", "3+6", "6+6"]
    assert [r["kept"] for r in rows] == [True, False, False]
    assert [r["accuracy"] != "" for r in rows] == [True, False, False]


def test_no_slower_no_loss_is_preferred(cwd):
    # Stage 6 width costs nothing (CW6 = 0) and gains little: {6,6} is no slower and no
    # worse, so it beats {3,3} whose score (0.1/ms) is finite.
    src, ev = _sources(linear_module(cwd, cw6=0.0, aw6=0.001))
    res = run_rbis(B0, 130, [224], src, ev, stages=[3, 6])
    first = [r for r in res.trace if r["iteration"] == 0]
    chosen = [r for r in first if r["chosen"]]
    assert [r["stages"] for r in chosen] == ["6+6"] and chosen[0]["preferred"]
    assert chosen[0]["score"] == math.inf
    assert max(r["score"] for r in first if not r["preferred"]) > 0


def test_score_formula():
    assert score(72.0, 120.0, 70.0, 100.0) == (False, pytest.approx(0.1))
    assert score(69.0, 120.0, 70.0, 100.0) == (False, 0.0)          # loss -> 0, not negative
    assert score(70.0, 100.0, 70.0, 100.0) == (True, math.inf)      # no slower, no loss
    assert score(69.9, 90.0, 70.0, 100.0) == (False, 0.0)           # faster but worse


def test_winner_rule():
    def rr(r, acc, lat):
        n = Node(B0.with_resolution(r), (0,) * 7, (0,) * 7, lat, acc)
        return ResolutionResult(r, True, "", [n])
    assert pick_winner([rr(240, 79.0, 270), rr(256, 79.2, 275)]).resolution == 256
    assert pick_winner([rr(240, 79.2, 271), rr(256, 79.2, 270)]).resolution == 256
    assert pick_winner([rr(256, 79.2, 270), rr(240, 79.2, 270)]).resolution == 240
    assert pick_winner([ResolutionResult(288, False, "slow")]) is None


def _read_trace(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _f(x):
    return float(x) if x not in ("", None) else math.nan


def _expected_choice(group, parent_lat, parent_acc):
    """The scoring rule, recomputed from latency and accuracy alone."""
    keys = []
    for j, g in enumerate(group):
        if g["accuracy"] == "":
            continue
        lat, acc = _f(g["latency_ms"]), _f(g["accuracy"])
        if lat <= parent_lat and acc >= parent_acc:          # no slower, no loss: preferred
            keys.append(((0, -acc, lat, j), j))
        else:
            s = max(acc - parent_acc, 0) / (lat - parent_lat) if lat > parent_lat else 0.0
            keys.append(((1, -s, lat, j), j))
    return min(keys)[1] if keys else None


@pytest.mark.slow
def test_trace_obeys_every_rule(cwd):
    mod = nonlinear_module(cwd)
    src, ev = _sources(mod)
    budget, k = 1.45 * src.latency_ms(B0, 224), 6
    stages = (2, 3, 4, 5, 6)
    res = run_rbis(B0, budget, [224, 240, 256], src, ev, k=k, out_dir=cwd / "o")
    rows = _read_trace(cwd / "o" / "trace.csv")
    pairs = ["+".join(map(str, p)) for p in combinations_with_replacement(stages, 2)]
    assert all(_f(r["latency_ms"]) <= budget for r in rows if r["chosen"] == "True")
    for pr in res.per_resolution:
        r = pr.resolution
        mine = [row for row in rows if int(row["resolution"]) == r]
        groups = {}
        for row in mine[1:]:
            groups.setdefault((int(row["iteration"]), row["phase"]), []).append(row)
        parent_lat, parent_acc = _f(mine[0]["latency_ms"]), _f(mine[0]["accuracy"])
        iterations = sorted({it for it, _ in groups})
        assert iterations == list(range(len(iterations))) and len(iterations) >= 2
        for it in iterations:
            group = groups[(it, "pair")]
            assert {g["dimension"] for g in group} == {"width" if it % 2 == 0 else "depth"}
            # all C(L+1, 2) multisets, in lexicographic order
            assert [g["stages"] for g in group] == pairs
            lat = [_f(g["latency_ms"]) for g in group]
            kept = sorted(range(len(group)), key=lambda j: (lat[j], j))[:k]
            assert [g["kept"] == "True" for g in group] == [j in kept for j in range(len(group))]
            for j, g in enumerate(group):
                assert _f(g["parent_latency_ms"]) == pytest.approx(parent_lat)
                evaluated = j in kept and lat[j] <= budget
                assert (g["accuracy"] != "") == evaluated
                if evaluated:
                    acc = _f(g["accuracy"])
                    if lat[j] <= parent_lat and acc >= parent_acc:
                        assert g["score"] == "inf"
                    elif lat[j] > parent_lat:
                        assert _f(g["score"]) == pytest.approx(
                            max(acc - parent_acc, 0) / (lat[j] - parent_lat), rel=1e-5)
            chosen = [j for j, g in enumerate(group) if g["chosen"] == "True"]
            best = _expected_choice(group, parent_lat, parent_acc)
            assert chosen == ([] if best is None else [best])
            if best is not None:
                parent_lat = _f(group[best]["latency_ms"])
                parent_acc = _f(group[best]["accuracy"])
                assert (it, "single") not in groups
            else:
                # no pair fits: the single steps of the same dimension, then the search stops
                assert it == iterations[-1]
                singles = groups[(it, "single")]
                assert [s["stages"] for s in singles] == [str(s) for s in stages]
                assert {s["dimension"] for s in singles} == {group[0]["dimension"]}
                for s in singles:
                    assert (s["accuracy"] != "") == (_f(s["latency_ms"]) <= budget)
                best = _expected_choice(singles, parent_lat, parent_acc)
                assert [j for j, s in enumerate(singles) if s["chosen"] == "True"] == \
                    ([] if best is None else [best])
                if best is not None:
                    parent_lat = _f(singles[best]["latency_ms"])
        assert pr.best.latency_ms == pytest.approx(parent_lat) and pr.best.latency_ms <= budget
    # every (network, resolution) read and evaluated once
    c = res.cache
    assert c.latency_calls == len(c.latency) and c.evaluations == len(c.values)
    keys = [(r["fingerprint"], r["resolution"]) for r in rows if r["accuracy"] != ""]
    assert len(c.values) == len(set(keys))
    assert res.winner.best.value == max(p.best.value for p in res.per_resolution)


class Counting(Evaluator):
    """Wraps a real evaluator; counts calls; raises KeyboardInterrupt after `stop_after`."""

    def __init__(self, inner, stop_after=None):
        super().__init__()
        self.inner, self.stop_after, self.seen = inner, stop_after, []

    def evaluate(self, request):
        if self.stop_after is not None and len(self.seen) >= self.stop_after:
            raise KeyboardInterrupt
        self.seen.append((request.spec.fingerprint, request.resolution))
        return self.inner.evaluate(request)

    def describe(self):
        return self.inner.describe()


class CountingLatency(PyLatency):
    def __init__(self, target):
        super().__init__(target)
        self.seen = []

    def latency_ms(self, spec, resolution):
        self.seen.append((spec.fingerprint, resolution))
        return super().latency_ms(spec, resolution)


@pytest.mark.slow
def test_resume_repeats_no_work(cwd):
    mod = nonlinear_module(cwd)
    budget = 1.4 * PyLatency(f"{mod}:latency_ms").latency_ms(B0, 224)
    args = dict(base=B0, budget_ms=budget, resolutions=[224, 240], k=5)

    ref_lat, ref_ev = CountingLatency(f"{mod}:latency_ms"), Counting(PyEvaluator(f"{mod}:accuracy"))
    run_rbis(source=ref_lat, evaluator=ref_ev, out_dir=cwd / "ref", **args)

    lat1, ev1 = CountingLatency(f"{mod}:latency_ms"), Counting(PyEvaluator(f"{mod}:accuracy"),
                                                                stop_after=len(ref_ev.seen) // 2)
    with pytest.raises(KeyboardInterrupt):
        run_rbis(source=lat1, evaluator=ev1, out_dir=cwd / "run", **args)
    assert (cwd / "run" / "state.json").exists() and (cwd / "run" / "trace.csv").exists()
    lat2, ev2 = CountingLatency(f"{mod}:latency_ms"), Counting(PyEvaluator(f"{mod}:accuracy"))
    res = run_rbis(source=lat2, evaluator=ev2, out_dir=cwd / "run", **args)

    assert len(ev1.seen) == len(ref_ev.seen) // 2 > 0
    assert not set(ev1.seen) & set(ev2.seen) and not set(lat1.seen) & set(lat2.seen)
    assert len(ev1.seen) + len(ev2.seen) == len(ref_ev.seen)
    assert len(lat1.seen) + len(lat2.seen) == len(ref_lat.seen)
    assert res.cache.resumed
    assert (cwd / "run" / "trace.csv").read_text() == (cwd / "ref" / "trace.csv").read_text()
    a = json.loads((cwd / "run" / "result.json").read_text())
    b = json.loads((cwd / "ref" / "result.json").read_text())
    assert a["network"] == b["network"] and a["accuracy"] == b["accuracy"]
    # a third run does nothing at all
    lat3, ev3 = CountingLatency(f"{mod}:latency_ms"), Counting(PyEvaluator(f"{mod}:accuracy"))
    run_rbis(source=lat3, evaluator=ev3, out_dir=cwd / "run", **args)
    assert lat3.seen == [] and ev3.seen == []


def test_state_from_other_sources_is_refused(cwd):
    m1, m2 = nonlinear_module(cwd), nonlinear_module(cwd)
    run_rbis(B0, 200, [224], *_sources(m1), out_dir=cwd / "o")
    with pytest.raises(SearchError, match="was made with"):
        run_rbis(B0, 200, [224], *_sources(m2), out_dir=cwd / "o")


@pytest.mark.slow
def test_table_evaluator_replays_recorded_accuracies(cwd):
    mod = nonlinear_module(cwd)
    src, ev = _sources(mod)
    budget = 1.3 * src.latency_ms(B0, 224)
    live = run_rbis(B0, budget, [224, 240], src, ev, k=4, out_dir=cwd / "live")
    state = json.loads((cwd / "live" / "state.json").read_text())
    with open(cwd / "acc.csv", "w") as f:
        f.write("network,fingerprint,resolution,accuracy\n")
        for key, acc in state["values"].items():
            fp, r = key.split("@")
            f.write(f"x,{fp},{r},{acc!r}\n")
    replay = run_rbis(B0, budget, [224, 240], PyLatency(f"{mod}:latency_ms"),
                      TableEvaluator(cwd / "acc.csv"), k=4)
    assert replay.winner.best.spec == live.winner.best.spec
    assert replay.trace == live.trace
    # one row fewer: a clear error naming the network, and the trace so far is on disk
    lines = (cwd / "acc.csv").read_text().splitlines()
    (cwd / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SourceError, match=r"has no row for network .* at resolution"):
        run_rbis(B0, budget, [224, 240], PyLatency(f"{mod}:latency_ms"),
                 TableEvaluator(cwd / "short.csv"), k=4, out_dir=cwd / "short")
    assert len(_read_trace(cwd / "short" / "trace.csv")) >= 1


def test_bad_inputs(cwd):
    src, ev = _sources(nonlinear_module(cwd))
    with pytest.raises(SearchError, match="unknown stage index 7"):
        run_rbis(B0, 200, [224], src, ev, stages=[3, 7])
    with pytest.raises(SearchError, match="below the baseline's latency at every resolution"):
        run_rbis(B0, 1.0, [224, 240], src, ev, out_dir=cwd / "slow")
    rows = _read_trace(cwd / "slow" / "trace.csv")
    assert [int(r["resolution"]) for r in rows] == [224, 240]
    with pytest.raises(SearchError, match="at least 1"):
        run_rbis(B0, 200, [224], src, ev, k=0)
