"""`py:` sources and evaluators: the user's module loaded alone, its failures as one line, and
a timeout that stops a function that hangs (search/pycall.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_lab.cli.app import main
from latency_lab.network.presets import get
from latency_lab.search.evaluators import parse_evaluator
from latency_lab.search.sources import SourceError, parse_latency_source
from search_helpers import nonlinear_module

B0 = get("efficientnet-b0")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_folder_in_the_working_directory_shadows_no_import(here):
    """A ./json/ (a ./matplotlib/ in the report) must not replace the real module, not even
    inside the user's own module; the user's ./helpers.py next to it still imports."""
    (here / "json").mkdir()
    (here / "json" / "__init__.py").write_text("raise RuntimeError('shadowed!')\n")
    (here / "helpers.py").write_text("SCALE = 2.0\n")
    (here / "lat.py").write_text(
        "import json\nimport helpers\n"
        "def f(net):\n    return helpers.SCALE * len(json.dumps(net)) / 1000\n")
    src = parse_latency_source("py:lat:f")
    assert src.latency_ms(B0, 224) > 0
    import json

    assert not json.__file__.startswith(str(here)) and json.dumps([1]) == "[1]"
    assert str(here) not in sys.path[:-1]                     # appended last, if at all


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_the_reported_case_a_matplotlib_folder_beside_the_search(here):
    """The installed command, as a user runs it: ./matplotlib/ was imported to draw paths.png."""
    (here / "matplotlib").mkdir()
    (here / "matplotlib" / "__init__.py").write_text("raise RuntimeError('shadowed!')\n")
    name = nonlinear_module(here)
    budget = 1.2 * parse_latency_source(f"py:{name}:latency_ms").latency_ms(B0, 224)
    exe = Path(sys.executable).with_name("latency-lab")
    p = subprocess.run([str(exe), "search", "--budget-ms", f"{budget:.3f}", "--latency",
                        f"py:{name}:latency_ms", "--accuracy", f"py:{name}:accuracy",
                        "--resolutions", "224", "--out", "o"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert (here / "o" / "paths.png").read_bytes()[:4] == b"\x89PNG"


def test_a_user_module_named_like_a_stdlib_module_stays_private(here):
    (here / "json.py").write_text("def f(net):\n    return 3.0\n")
    src = parse_latency_source("py:json:f")
    assert src.latency_ms(B0, 224) == 3.0
    import json

    assert hasattr(json, "loads") and not hasattr(json, "f")   # the real json is untouched


def test_a_module_given_by_path(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "acc.py").write_text("def acc(net):\n    return 71.5\n")
    monkeypatch.chdir("/")
    ev = parse_evaluator(f"py:{tmp_path}/sub/acc.py:acc")
    assert ev.evaluate(ev.request(B0, 224)).value == 71.5


@pytest.mark.parametrize("body, message", [
    ("def f(net)\n    return 1\n", r"importing bad from .* raised SyntaxError: expected ':' "
                                    r"\(bad.py, line 1\)"),
    ("raise ValueError('no GPU here')\n", "importing bad from .* raised ValueError: no GPU here"),
    ("import sys\nsys.exit('missing licence file')\n", "called sys.exit\\('missing licence file'\\)"),
    ("import no_such_dependency_xyz\n", "importing bad from .* failed: No module named "
                                        "'no_such_dependency_xyz'"),
    ("x = 1\n", "module 'bad' has no function 'f'"),
])
def test_a_module_that_cannot_be_imported_is_one_line(here, capsys, body, message):
    (here / "bad.py").write_text(body)
    with pytest.raises(SourceError, match=message):
        parse_latency_source("py:bad:f")
    rc = main(["scale", "--method", "compound", "--budget-ms", "5", "--latency", "py:bad:f"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_sys_exit_with_a_message_in_an_evaluator_keeps_the_message(here, capsys):
    (here / "ev.py").write_text("import sys\ndef lat(net):\n    return 10.0\n"
                                "def acc(net):\n    sys.exit('dataset not mounted')\n")
    rc = main(["search", "--budget-ms", "12", "--latency", "py:ev:lat", "--accuracy", "py:ev:acc",
               "--out", "o"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "Traceback" not in "\n".join(err)
    assert "evaluator py:ev:acc called sys.exit('dataset not mounted')" in err[-1]


@pytest.mark.parametrize("value, message", [
    (True, "returned True \\(not a number\\)"),
    (-3, "a top-1 accuracy in % lies in 0..100"),
    (250, "a top-1 accuracy in % lies in 0..100"),
    ("'76'", "not a number"),
])
def test_accuracies_are_percentages(here, value, message):
    (here / "ev.py").write_text(f"def acc(net):\n    return {value}\n")
    with pytest.raises(SourceError, match=message):
        ev = parse_evaluator("py:ev:acc")
        ev.evaluate(ev.request(B0, 224))


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_a_function_that_hangs_is_stopped_at_its_timeout(here):
    (here / "slow.py").write_text("import time\ndef f(net):\n"
                                  "    if net['resolution'] > 224:\n        time.sleep(600)\n"
                                  "    return 5.0\n")
    src = parse_latency_source("py:slow:f,timeout=3")
    try:
        assert src.latency_ms(B0, 224) == 5.0                  # runs in the worker
        t = time.monotonic()
        with pytest.raises(SourceError, match="did not return within 3 s .* stopped it"):
            src.latency_ms(B0, 256)
        assert time.monotonic() - t < 10 * 3       # within a few timeouts, not the 600 s sleep
        assert src.latency_ms(B0, 224) == 5.0                  # a fresh worker after the kill
    finally:
        src.close()


def test_timeout_also_covers_errors_raised_in_the_worker(here):
    (here / "w.py").write_text("def f(net):\n    raise KeyError('stage 9')\n")
    src = parse_latency_source("py:w:f,timeout=30")
    try:
        with pytest.raises(SourceError, match="raised KeyError: 'stage 9' for efficientnet-b0"):
            src.latency_ms(B0, 224)
    finally:
        src.close()


@pytest.mark.parametrize("text, message", [
    ("py:w:f,timeout=0", "must be a positive number of seconds"),
    ("py:w:f,timeout=nan", "must be a positive number of seconds"),
    ("py:w:f,timeout=soon", "is not a number of seconds"),
    ("py:w:f,retries=3", "the one option is timeout=SECONDS"),
    ("py:w:f,timeout=2", "importing w from .* raised ZeroDivisionError"),
])
def test_timeout_option_errors(here, text, message):
    (here / "w.py").write_text("1 / 0\n")
    with pytest.raises(SourceError, match=message):
        parse_latency_source(text)


# -- the worker process (search/pyworker.py, issue 25) ---------------------------------------

def test_a_function_that_exits_the_process_is_one_line_naming_the_network(here, capsys):
    """os._exit(0) in a py: function ended search with exit code 0 and no word."""
    (here / "ex.py").write_text("import os\ndef lat(net):\n    return 10.0\n"
                                "def acc(net):\n    os._exit(0)\n")
    with pytest.raises(SourceError, match=r"its worker process exited \(os._exit\(0\) or a crash\)"
                                          r" for efficientnet-b0"):
        ev = parse_evaluator("py:ex:acc")
        ev.evaluate(ev.request(B0, 224))
    rc = main(["search", "--budget-ms", "12", "--latency", "py:ex:lat", "--accuracy", "py:ex:acc",
               "--out", "o"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "exited (os._exit(0)" in err[-1] and "efficientnet-b0" in err[-1]
    assert (here / "o" / "trace.csv").exists()       # what was done before is kept


@pytest.mark.slow   # five worker processes
def test_a_worker_killed_by_a_signal_is_replaced_and_the_call_made_again(here):
    (here / "k.py").write_text("import os, signal\ndef f(net):\n"
                               "    if not os.path.exists('killed'):\n"
                               "        open('killed', 'w').close()\n"
                               "        os.kill(os.getpid(), signal.SIGKILL)\n"
                               "    return 4.0\n")
    src = parse_latency_source("py:k:f")
    try:
        assert src.latency_ms(B0, 224) == 4.0 and (here / "killed").exists()
    finally:
        src.close()
    (here / "always.py").write_text("import os, signal\ndef f(net):\n"
                                    "    os.kill(os.getpid(), signal.SIGKILL)\n")
    src = parse_latency_source("py:always:f")
    with pytest.raises(SourceError, match="was killed by SIGKILL for .*, 4 times; giving up"):
        src.latency_ms(B0, 224)


def test_what_a_function_prints_is_capped_and_summarised(here, capfd):
    from latency_lab.search.pyworker import OUTPUT_CAP

    (here / "loud.py").write_text("import os, sys\ndef f(net):\n"
                                  "    for _ in range(10_000):\n        print('x' * 99)\n"
                                  "    os.write(2, b'y' * 500_000)\n    return 3.0\n")
    src = parse_latency_source("py:loud:f")
    assert src.latency_ms(B0, 224) == 3.0 and src.latency_ms(B0, 256) == 3.0
    src.close()
    err = capfd.readouterr().err
    assert len(err) < OUTPUT_CAP + 1000
    assert "latency function py:loud:f printed 3,000,000 bytes; the first 65,536 are shown" in err
