"""Every command, fed what an adversarial user would feed it: one line on stderr, exit 2, no
traceback, nothing written; and Ctrl-C prints the documented line.

The classes (each with several cases, not only the reported example): usage errors, numbers
that are NaN, infinite or out of their physical range, output paths under a regular file at any
depth, files that are not UTF-8 or are nested too deeply, JSON with NaN/Infinity, ranges too
large to build, and stores that are not latency-lab stores.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY
from latency_lab.cli.app import INTERRUPTED, main

TESTS = Path(__file__).parent
SWEEP = ["sweep", "--network", "tiny.json", "--resolutions", "64:96:8", "--out", "o.csv"]
SEARCH = ["search", "--budget-ms", "10", "--latency", "py:m:lat", "--accuracy", "py:m:acc"]
JUMPS = ["jumps", "sweep.csv", "--out", "j"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "m.py").write_text("def lat(net):\n    return 8.0\ndef acc(net):\n    return 70.0\n")
    (tmp_path / "sweep.csv").write_text("resolution,latency_ms\n" + "".join(
        f"{r},{1 + r / 100}\n" for r in range(160, 240, 8)))
    (tmp_path / "latin1.json").write_bytes(b'{"name": "r\xe9seau"}')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    d = dict(TINY)
    d["stages"] = [dict(TINY["stages"][0], expansion=1e999)] + TINY["stages"][1:]
    (tmp_path / "inf.json").write_text(json.dumps(d))              # writes Infinity
    (tmp_path / "w167.json").write_text(json.dumps(dict(TINY, stages=[
        dict(TINY["stages"][0], width=16.7)] + TINY["stages"][1:])))
    (tmp_path / "wtrue.json").write_text(json.dumps(dict(TINY, head={"width": True})))
    (tmp_path / "huge.json").write_text(json.dumps(dict(TINY, head={"width": 10**9})))
    (tmp_path / "bad_res.csv").write_text("resolution,latency_ms\n" + "".join(
        f"{r},{1 + r / 100}\n" for r in range(160, 224, 8)) + "1e9,9\n")
    (tmp_path / "cands.csv").write_text("resolution\n240\n240.5\n")
    (tmp_path / "acc_neg.csv").write_text("fingerprint,resolution,accuracy\nabc,224,-3\n")
    (tmp_path / "acc_250.csv").write_text("fingerprint,resolution,accuracy\nabc,224,250\n")
    (tmp_path / "acc_true.csv").write_text("fingerprint,resolution,accuracy\nabc,224,true\n")
    (tmp_path / "acc_latin1.csv").write_bytes(b"fingerprint,resolution,accuracy\nabc,224,7\xb0\n")
    (tmp_path / "lut_nan.json").write_text('{"format": NaN}')
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    return tmp_path


CASES = [
    # usage errors: one line, not typer's box
    (["sweep", "--no-such-option"], "No such option: --no-such-option"),
    (["sweep", "--threads", "two"], "Invalid value for '--threads'"),
    (["search", "--latency", "cpu"], "Missing option '--budget-ms'"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["jumps"], "Missing argument"),
    (["lut", "predict", "--lut"], "Option '--lut' requires an argument"),
    # numbers: NaN, infinity, out of their physical range
    (SWEEP + ["--ci-target-pct", "nan"], "--ci-target-pct must be a finite number"),
    (SWEEP + ["--ci-target-pct", "0"], "--ci-target-pct must be > 0 and <= 100"),
    (SWEEP + ["--ci-target-pct", "150"], "a CI half-width in % of the median"),
    (SWEEP + ["--time-cap-s", "nan"], "--time-cap-s must be a finite number"),
    (SWEEP + ["--time-cap-s", "-5"], "--time-cap-s must be > 0"),
    (SWEEP + ["--min-rounds", "0"], "protocol needs"),
    (["scale", "--method", "compound", "--budget-ms", "inf", "--latency", "py:m:lat"],
     "--budget-ms must be a finite number"),
    (["scale", "--method", "compound", "--budget-ms", "nan", "--latency", "py:m:lat"],
     "--budget-ms must be a finite number"),
    (["scale", "--method", "compound", "--budget-ms", "-1", "--latency", "py:m:lat"],
     "--budget-ms must be > 0, got -1.0 (a latency in ms)"),
    (["search", "--budget-ms", "inf", "--latency", "py:m:lat", "--accuracy", "py:m:acc"],
     "--budget-ms must be a finite number"),
    (SEARCH + ["--candidates", "0"], "--candidates must be at least 1"),
    (JUMPS + ["--z-min", "nan"], "--z-min must be a finite number"),
    (JUMPS + ["--z-min", "-5"], "--z-min must be > 0, got -5.0 (the step a jump needs, in "
                                "standard errors)"),
    (JUMPS + ["--budget-ms", "nan"], "--budget-ms must be a finite number"),
    (JUMPS + ["--min-jump-pct", "-1"], "--min-jump-pct must be >= 0"),
    (["jumps", "bad_res.csv", "--out", "j"], "above 2048, the largest input"),
    (["network", "show", "efficientnet-b0", "--resolution", "99999"], "outside 32..2048"),
    # ranges and sizes that cannot be built
    (["sweep", "--resolutions", "32:99999999999:1"], "resolution 99999999999 outside 32..2048"),
    (["sweep", "--resolutions", "32:2048:0"], "positive step"),
    (SEARCH + ["--resolutions-from", "cands.csv"], "resolution '240.5' is not a whole number"),
    (["network", "show", "huge.json"], "do not fit the 2 GiB a TFLite model can hold"),
    (["network", "show", "w167.json"], "stage 0 width must be an integer, got 16.7"),
    (["network", "show", "wtrue.json"], "head width must be an integer, got True"),
    # output paths under a regular file, at any depth, refused before any work
    (["sweep", "--network", "tiny.json", "--out", "afile/o.csv"], "afile is a file"),
    (["sweep", "--network", "tiny.json", "--out", "afile/a/b/o.csv"], "afile is a file"),
    (SWEEP + ["--jumps-out", "afile/j"], "afile is a file"),
    (SEARCH + ["--out", "afile/a/b"], "afile is a file"),
    (["scale", "--method", "fast", "--budget-ms", "9", "--latency", "py:m:lat", "--out",
      "afile/a/c.json"], "afile is a file"),
    (JUMPS[:-1] + ["afile/x/y"], "afile is a file"),
    (["table", "export", "afile/a/t.csv"], "afile is a file"),
    (["lut", "record", "--out", "afile/a/l.json"], "afile is a file"),
    (["sweep", "--network", "tiny.json", "--out", "."], "is a directory"),
    # files that are not UTF-8, nested too deeply, or carry NaN/Infinity
    (["network", "show", "latin1.json"], "is not UTF-8 text"),
    (["network", "show", "deep.json"], "nested too deeply"),
    (["network", "show", "inf.json"], "Infinity is not a JSON number"),
    (["sweep", "--network", "deep.json"], "nested too deeply"),
    (["table", "export", "t.csv", "--network", "latin1.json"], "is not UTF-8 text"),
    (["table", "show", "latin1.json"], "cannot parse table"),
    (["lut", "show", "latin1.json"], "is not UTF-8 text"),
    (["lut", "show", "deep.json"], "nested too deeply"),
    (["lut", "show", "lut_nan.json"], "NaN is not a JSON number"),
    (SEARCH + ["--accuracy", "table:acc_latin1.csv"], "is not UTF-8 text"),
    (SEARCH + ["--accuracy", "table:acc_neg.csv"], "'-3' is not a top-1 accuracy in %"),
    (SEARCH + ["--accuracy", "table:acc_250.csv"], "'250' is not a top-1 accuracy in %"),
    (SEARCH + ["--accuracy", "table:acc_true.csv"], "unreadable row"),
    (SEARCH + ["--resolutions-from", "latin1.json"], "is not UTF-8 text"),
    # stores that are not latency-lab stores
    (SWEEP + ["--store", "other.db"], "a SQLite database of another program"),
    (SWEEP + ["--store", "afile"], "file is not a database"),
    (SWEEP + ["--store", "."], "is a directory"),
    (["table", "export", "t.csv", "--store", "afile/s.sqlite"], "cannot create store"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(here, capsys, args, message):
    before = sorted(p.name for p in here.iterdir())
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert sorted(p.name for p in here.iterdir()) == before


def test_an_accuracy_table_with_a_byte_order_mark_is_read(here, capsys):
    """Excel writes CSV with a BOM; latency tables accepted it, accuracy tables did not."""
    from latency_lab.network.presets import get
    from latency_lab.search.evaluators import parse_evaluator

    b0 = get("efficientnet-b0")
    (here / "acc.csv").write_bytes(f"fingerprint,resolution,accuracy\n{b0.fingerprint},224,"
                                   "77.1\n".encode("utf-8-sig"))
    ev = parse_evaluator("table:acc.csv")
    assert ev.evaluate(ev.request(b0, 224)).value == 77.1


SLOW_DEVICE = """
import time
from conftest import CurveDevice

class SlowDevice(CurveDevice):
    def sample(self, spec, resolution, runs, warmup_runs=1):
        time.sleep(0.02)
        return super().sample(spec, resolution, runs, warmup_runs)
"""


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_ctrl_c_prints_the_documented_line_and_keeps_the_samples(here):
    (here / "slowdev.py").write_text(SLOW_DEVICE)
    env = dict(os.environ, PYTHONPATH=f"{here}{os.pathsep}{TESTS}")
    exe = Path(sys.executable).with_name("latency-lab")
    p = subprocess.Popen([str(exe), *SWEEP, "--device", "slowdev:SlowDevice", "--store",
                          "s.sqlite", "--min-rounds", "50", "--max-rounds", "60"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # as from a terminal, even when pytest itself runs in the background
                         # (`cmd &` starts it with SIGINT ignored, which the child inherits)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t = time.monotonic()
    while time.monotonic() - t < 120:
        try:
            if sqlite3.connect(here / "s.sqlite").execute("SELECT COUNT(*) FROM samples"
                                                          ).fetchone()[0] > 20:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err
    db = sqlite3.connect(here / "s.sqlite")
    assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] > 20
    assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0   # given back
    rows = (here / "o.csv").read_text().splitlines()   # what was measured, written whole
    assert rows[0].startswith("resolution,") and len(rows) == 1 + 5
