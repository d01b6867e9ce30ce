"""The evaluator interface: option syntax, registry, the unit of work, parent and step."""

from __future__ import annotations

import csv
import pickle

import pytest

from latency_lab.network import presets
from latency_lab.search.accuracy_cache import AccuracyCache, lineage_id
from latency_lab.search.evaluators import (EVALUATORS, EvalRequest, EvalResult, Evaluator,
                                           EvaluatorError, Option, Step, parse_evaluator,
                                           register_evaluator, run_request,
                                           split_evaluator_text)
from latency_lab.search.rbis import run_rbis
from latency_lab.search.sources import PyLatency
from latency_lab.measure.store import Store
from latency_lab.measure.store_evaluations import newest_evaluations
from search_helpers import nonlinear_module

B0 = presets.get("efficientnet-b0")


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_option_syntax():
    assert split_evaluator_text("zen") == ("zen", None, {})
    assert split_evaluator_text(" zen, batch=8 ,seed=3") == ("zen", None, {"batch": "8",
                                                                          "seed": "3"})
    assert split_evaluator_text("py:a.b:f") == ("py", "a.b:f", {})
    assert split_evaluator_text("train:/data/x,epochs=3") == ("train", "/data/x",
                                                             {"epochs": "3"})
    for bad, message in [("", "empty"), ("zen,batch", "use KEY=VALUE"),
                         ("zen,batch=1,batch=2", "given twice"), ("batch=3", "starts with")]:
        with pytest.raises(EvaluatorError, match=message):
            split_evaluator_text(bad)


def test_options_are_typed_checked_and_canonical():
    ev = parse_evaluator("zen-tuned,seed=3,batch=8")
    assert ev.options["batch"] == 8 and ev.options["seed"] == 3
    # every option spelled out, sorted: the text reads back to the same evaluator and key
    text = ev.describe()
    assert text == "zen-tuned,batch=8,device=cpu,gamma=0.01,repeats=1,se=drop,seed=3,threads=1"
    assert parse_evaluator(text).key() == ev.key()
    assert parse_evaluator("zen-tuned,batch=16").key() == parse_evaluator("zen-tuned").key()
    assert parse_evaluator("zen,seed=1").key() != parse_evaluator("zen").key()
    assert parse_evaluator("zen,threads=1").key() == parse_evaluator("zen").key()  # unkeyed
    assert parse_evaluator("zen").key() != parse_evaluator("zen-tuned").key()
    for bad, message in [("zen,batch=1", "at least 2"), ("zen,gamma=nan", "finite"),
                         ("zen,repeats=2.5", "not an integer"), ("zen,device=tpu", "one of"),
                         ("zen,colour=red", "unknown option 'colour'"),
                         ("nosuch", "unknown accuracy evaluator 'nosuch'"),
                         ("table", "needs its PATH"), ("zen:x", "takes no argument")]:
        with pytest.raises(EvaluatorError, match=message):
            parse_evaluator(bad)


class Recorder(Evaluator):
    """A parent-aware test evaluator: value = parent's value + 1 + a per-step gain, so
    the value depends on the path; records every request it is handed."""

    name = "recorder"
    metric = "test_value"
    metric_label = "test value"
    unit = ""
    uses_parent = True
    OPTIONS = {"gain": Option(float, 1.0)}
    seen: list[EvalRequest] = []

    def evaluate(self, request):
        Recorder.seen.append(request)
        return EvalResult(self.value(request))

    def value(self, request):
        if request.parent is None:
            return 0.0
        bonus = sum(1.0 + 0.1 * s for s in request.step.stages)
        return self.value(request.parent) + self.options["gain"] * bonus


def test_search_hands_parent_and_step_to_the_evaluator(cwd):
    register_evaluator("recorder", Recorder)
    try:
        mod = nonlinear_module(cwd)
        src = PyLatency(f"{mod}:latency_ms")
        budget = 1.3 * src.latency_ms(B0, 224)
        Recorder.seen = []
        ev = parse_evaluator("recorder,gain=2")
        store = Store(cwd / "s.sqlite")
        res = run_rbis(B0, budget, [224], src, ev, k=3, out_dir=cwd / "o",
                       accuracy_cache=AccuracyCache(store, ev))
    finally:
        EVALUATORS.pop("recorder")
    seen = Recorder.seen
    assert seen[0].parent is None and seen[0].step is None      # the baseline
    with open(cwd / "o" / "trace.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "test_value" in rows[0] and "parent_test_value" in rows[0]
    for req in seen[1:]:
        # the parent's request is the one that was evaluated for the parent, at the same
        # resolution, and its spec plus the step gives this candidate
        assert req.parent in seen and req.resolution == req.parent.resolution == 224
        assert req.step.dimension in ("width", "depth") and 1 <= len(req.step.stages) <= 2
        row = next(r for r in rows if r["fingerprint"] == req.spec.fingerprint
                   and r["test_value"] != "")
        assert row["stages"] == "+".join(map(str, req.step.stages))
        assert float(row["parent_test_value"]) == pytest.approx(ev.value(req.parent))
        assert req.lineage()[:-1] == req.parent.lineage()
    # the chosen path is a chain of parents
    path = res.per_resolution[0].path
    for parent, child in zip(path, path[1:]):
        assert child.request.parent == parent.request
        assert child.request.step == Step(child.dimension, child.stages)
    # a path-dependent evaluator's values are cached per lineage
    stored = newest_evaluations(store)
    assert len(stored) == len(seen)
    assert sum(1 for r in stored if r["lineage"] == "") == 1      # only the baseline
    assert len({r["lineage"] for r in stored}) == len(stored)


def test_request_is_a_picklable_unit_of_work(cwd):
    mod = nonlinear_module(cwd)
    ev = parse_evaluator(f"py:{mod}:accuracy")
    parent = ev.request(B0, 224)
    child = ev.request(B0.with_stage(3, B0.stages[3]), 224, parent, Step("width", (3, 3)))
    back = pickle.loads(pickle.dumps(child))
    assert back == child and back.parent == parent and back.step.label == "w3+3"
    # run anywhere from the request alone: the same value as the evaluator in hand
    assert run_request(back).value == ev.evaluate(child).value
    assert lineage_id(ev, child) == ""        # py: does not depend on the parent


def test_py_evaluator_key_follows_its_source(cwd):
    mod = nonlinear_module(cwd)
    key = parse_evaluator(f"py:{mod}:accuracy").key()
    assert key.startswith(f"py:{mod}:accuracy;v1;src=")
    other = nonlinear_module(cwd)        # same source, other module name: other key
    assert parse_evaluator(f"py:{other}:accuracy").key() != key


def test_table_reads_exported_metric_and_refuses_mixtures(cwd):
    fp = B0.fingerprint
    (cwd / "t.csv").write_text(f"fingerprint,resolution,metric,value,evaluator\n"
                               f"{fp},224,zen_tuned_score,3.5,zen-tuned\n")
    ev = parse_evaluator("table:t.csv")
    assert ev.metric == "zen_tuned_score" and ev.unit == "" and "Zen" in ev.metric_label
    assert ev.evaluate(ev.request(B0, 224)).value == 3.5 and not ev.cacheable
    (cwd / "m.csv").write_text(f"fingerprint,resolution,metric,value,evaluator\n"
                               f"{fp},224,zen_score,3.5,zen\n{fp},240,accuracy,70,py:x:y\n")
    with pytest.raises(EvaluatorError, match="mixes metrics"):
        parse_evaluator("table:m.csv")


def pool_runner(evaluator, requests):
    """Runs every request in worker processes from the request alone (run_request) and
    yields the results in the order they finish, the last request's first."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        futures = {pool.submit(run_request, r): i for i, r in enumerate(requests)}
        done = [(futures[f], f.result()) for f in futures]
    yield from reversed(done)


@pytest.mark.slow
def test_a_search_run_elsewhere_and_out_of_order_decides_the_same(cwd):
    mod = nonlinear_module(cwd)
    src = PyLatency(f"{mod}:latency_ms")
    budget = 1.3 * src.latency_ms(B0, 224)
    ev = parse_evaluator(f"py:{mod}:accuracy")
    local = run_rbis(B0, budget, [224], src, ev, k=4, out_dir=cwd / "local")
    pooled = run_rbis(B0, budget, [224], src, ev, k=4, out_dir=cwd / "pool", run=pool_runner)
    assert pooled.trace == local.trace and pooled.cache.evaluations == local.cache.evaluations
    assert (cwd / "pool" / "trace.csv").read_text() == (cwd / "local" / "trace.csv").read_text()
