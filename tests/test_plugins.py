"""Evaluators and executors installed by another package (entry points), as devices are: found
by name in this process and in spawned workers, listed with their options, usable in a search.

The plugin is a real distribution on sys.path, laid out as pip installs one (a module and its
.dist-info with entry_points.txt), so `importlib.metadata` finds it as it finds any package.
"""

from __future__ import annotations

import importlib
import json
import os
import textwrap

import pytest

from latency_lab.cli.app import main
from latency_lab.network import presets
from latency_lab.search.sources import PyLatency
from search_helpers import NONLINEAR, write_module

B0 = presets.get("efficientnet-b0")

PLUGIN = '''
import os
from pathlib import Path

from latency_lab.network.complexity import macs
from latency_lab.scaleout.executors import InlineExecutor
from latency_lab.search.evaluators import EvalResult, Evaluator, Option


class MacsScore(Evaluator):
    """A proxy score from MACs and resolution; logs the process that evaluated."""

    name = "macs-score"
    summary = "log of MACs, scaled (a test plugin's proxy score)"
    metric = "macs_score"
    metric_label = "MACs score"
    unit = ""
    ARG = "LOG_DIR"
    OPTIONS = {"scale": Option(float, 1.0, "multiplier of the score", minimum=0)}

    def evaluate(self, request):
        spec = request.spec
        value = self.options["scale"] * (macs(spec, request.resolution) / 1e9) ** 0.5
        log = Path(self.arg) / f"{os.getpid()}.log"
        with open(log, "a") as f:
            f.write(f"{spec.fingerprint}@{request.resolution}\\n")
        return EvalResult(value)


class LastFirstExecutor(InlineExecutor):
    """This process, the batch's last item first: an order no built-in executor uses."""

    name = "last-first"
    SYNTAX = (("last-first", "this process, last item first"),)

    @classmethod
    def parse(cls, text, arg):
        from latency_lab.scaleout.base import ExecutorSpec, ExecutorError

        if arg is not None:
            raise ExecutorError(f"--executor {text!r}: last-first takes no argument")
        return ExecutorSpec(text, "last-first")

    @classmethod
    def create(cls, spec, max_retries=0):
        return cls(spec)

    def map_unordered(self, fn, items, resources=None):
        for i in reversed(range(len(items))):
            yield i, fn(items[i])
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """`ll_plugin_demo` installed into a folder on sys.path (and PYTHONPATH, for any process)."""
    site = tmp_path / "site"
    (site / "ll_plugin_demo-0.1.dist-info").mkdir(parents=True)
    (site / "ll_plugin_demo.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "ll_plugin_demo-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ll-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[latency_lab.evaluators]\nmacs-score = ll_plugin_demo:MacsScore\n\n"
        "[latency_lab.executors]\nlast-first = ll_plugin_demo:LastFirstExecutor\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    importlib.invalidate_caches()
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.chdir(tmp_path)
    return logs


@pytest.fixture
def mod(tmp_path):
    return write_module(tmp_path, NONLINEAR)


def _search(mod, out, evaluator, executor):
    budget = 1.3 * PyLatency(f"{mod}:latency_ms").latency_ms(B0, 224)
    return main(["search", "--budget-ms", f"{budget:.3f}", "--latency", f"py:{mod}:latency_ms",
                 "--accuracy", evaluator, "--resolutions", "224,240", "--stages", "3,4,5,6",
                 "--candidates", "3", "--out", str(out), "--store", f"{out}.sqlite",
                 "--executor", executor])


def _result(out) -> tuple[str, dict]:
    return (out / "trace.csv").read_text(), json.loads((out / "result.json").read_text())


def test_an_installed_evaluator_is_listed_with_its_options(plugin, capsys):
    assert main(["evaluators"]) == 0
    text = capsys.readouterr().out
    assert "macs-score:LOG_DIR,KEY=VALUE..." in text
    assert "scale=1.0" in text and "multiplier of the score" in text
    assert "zen-tuned" in text          # the built-ins beside it
    assert main(["evaluators", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["macs-score"]["class"] == "ll_plugin_demo:MacsScore"
    assert rows["macs-score"]["options"]["scale"]["minimum"] == 0


@pytest.mark.slow
def test_an_installed_evaluator_runs_in_spawned_workers(plugin, mod, tmp_path):
    """`--executor local:2`: the workers find the plugin by its name, as this process does,
    and give the same search as evaluating here."""
    assert _search(mod, tmp_path / "here", f"macs-score:{plugin},scale=2", "local") == 0
    here = _result(tmp_path / "here")
    mine = {f.name for f in plugin.iterdir()}
    assert mine == {f"{os.getpid()}.log"}
    for f in plugin.iterdir():
        f.unlink()
    assert _search(mod, tmp_path / "workers", f"macs-score:{plugin},scale=2",
                   "local:2") == 0
    assert _result(tmp_path / "workers") == here
    pids = {int(f.stem) for f in plugin.iterdir()}
    assert pids and os.getpid() not in pids
    assert here[1]["counts"]["evaluations"] > 5


@pytest.mark.slow
def test_an_installed_executor_is_named_like_a_built_in(plugin, mod, tmp_path):
    assert _search(mod, tmp_path / "ref", f"macs-score:{plugin}", "local") == 0
    assert _search(mod, tmp_path / "lf", f"macs-score:{plugin}", "last-first") == 0
    assert _result(tmp_path / "lf") == _result(tmp_path / "ref")
    assert main(["search", "--budget-ms", "1", "--latency", "cpu", "--accuracy", "synthetic",
                 "--executor", "last-first:3"]) == 2


def test_a_registered_evaluator_class_reaches_spawned_workers(tmp_path, monkeypatch):
    """register_evaluator in this process only: the requests carry the class's module path,
    so local:N workers rebuild it from there."""
    from latency_lab.scaleout.executors import open_executor, parse_executor
    from latency_lab.search.evaluators import (EVALUATORS, evaluation_runner, parse_evaluator,
                                               register_evaluator)

    register_evaluator("pid-score", PidScore)
    try:
        ev = parse_evaluator("pid-score")
        requests = [ev.request(B0, r) for r in (192, 224, 256)]
        with open_executor(parse_executor("local:2")) as ex:
            got = dict(evaluation_runner(ex)(ev, requests))
    finally:
        EVALUATORS.pop("pid-score")
    assert sorted(got) == [0, 1, 2]
    assert all(r.details["pid"] != os.getpid() for r in got.values())
    assert [got[i].value for i in range(3)] == [192.0, 224.0, 256.0]


from latency_lab.search.evaluators import EvalResult, Evaluator  # noqa: E402


class PidScore(Evaluator):
    name = "pid-score"
    metric, unit = "pid_score", ""

    def evaluate(self, request):
        return EvalResult(float(request.resolution), details={"pid": os.getpid()})
