"""Adversarial replay: malformed inputs to every command, and the integrity scenarios.

Runs the installed `latency-lab` command as a user would, each case in a fresh sandbox
directory of its own (inputs copied in, its own cache and store), and counts a case *clean*
when it ends as it must:

- refused: exit code 2, exactly one line on stderr starting with "error: ", no traceback,
  and no file left behind (no output, no temporary, no store created); an error met after the
  work began (an evaluator failing mid-search) keeps what was done (the search's trace and
  state) and is refused otherwise the same way;
- accepted (inputs that are fine, e.g. an accuracy table with a byte-order mark): exit 0 and no
  traceback.

A refused case changes nothing in its sandbox (every entry's type, inode, size, mtime and link
target compared, nothing opened); an accepted case that names its outputs changes nothing else.
Round 3 (issue 25, `adversarial_r3.py`) adds outputs that are device nodes, FIFOs, sockets and
links, names that would leave their folder, damaged stores, hangs (FIFOs among images, link
loops, a LUT space too large), numbers and files at the edges, and what was refused only after
work; its cases may make special files in their sandbox and set environment variables.

Then the integrity scenarios: a real 2 MB tmpfs that fills up under a sweep and a table export
(via `unshare -rm`, skipped where user namespaces are not allowed), two identical sweeps at once
into one store, kill -9 of a sweep three times, Ctrl-C, SIGTERM to search, compare and lut
record, and signals during start-up. Prints "N of M clean" and writes
results/benchmarks/adversarial.{md,json} (with the machine's load).

Usage: python benchmarks/adversarial.py [--jobs 2] [--only SUBSTRING] [--category A,B]
       [--no-scenarios | --scenarios-only | --scenario NAME]. Each case that is not clean is
printed as it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import adversarial_r3 as r3

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("latency-lab")
OUT = ROOT / "results" / "benchmarks"
TIMEOUT_S = 180
HANG_S = 60          # the hangs class: a case still running after this has hung

TINY = {"name": "tiny", "resolution": 64, "num_classes": 10, "activation": "relu",
        "stem": {"width": 8, "kernel": 3, "stride": 2}, "head": {"width": 32},
        "stages": [{"width": 8, "depth": 1, "kernel": 3, "expansion": 1, "stride": 1,
                    "se_ratio": 0.25},
                   {"width": 16, "depth": 2, "kernel": 5, "expansion": 4, "stride": 2}]}

DEVICE = '''
import random, time
from latency_lab.measure.api import Device, DeviceInfo, RunResult

class Curve(Device):
    """A device whose latency is a formula with seeded noise (and a short sleep per visit)."""
    name = "curve"

    def __init__(self, sleep: float = 0.0, seed: int = 0):
        self.sleep, self.rng = float(sleep), random.Random(int(seed))

    def info(self):
        return DeviceInfo(name="curve", hardware="formula", runtime="python",
                          runtime_version="1", threads=1)

    def sample(self, spec, resolution, runs, warmup_runs=1):
        time.sleep(self.sleep)
        base = 1e-4 * resolution ** 2 + (2.0 if resolution >= 200 else 0.0)
        return RunResult(tuple(base * (1 + 0.01 * self.rng.gauss(0, 1)) for _ in range(runs)))
'''


def _net(**changes) -> str:
    d = json.loads(json.dumps(TINY))
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return json.dumps(d)


def fixtures(root: Path) -> None:
    """The inputs every case may name (copied into each case's sandbox)."""
    w = lambda name, text: (root / name).write_text(text)  # noqa: E731
    b = lambda name, data: (root / name).write_bytes(data)  # noqa: E731
    (root / "devmods").mkdir()   # on PYTHONPATH for --device advdev:Curve, and nothing else
    w("devmods/advdev.py", DEVICE)
    w("tiny.json", json.dumps(TINY))
    w("afile", "a regular file\n")
    w("m.py", "def lat(net):\n    return 8.0 + net['resolution'] / 1000\n"
              "def acc(net):\n    return 70.0\n"
              "def wide(net):  # B0 (widths 784 in all) 8.784 ms; every wider candidate more\n"
              "    return 8.0 + sum(s['width'] for s in net['stages']) / 1000\n")
    w("sweep.csv", "resolution,latency_ms\n" + "".join(f"{r},{1 + r / 100}\n"
                                                     for r in range(160, 240, 8)))
    b("latin1.json", b'{"name": "r\xe9seau"}')
    b("latin1.csv", b"resolution,latency_ms\n160,1\xb5\n")
    w("deep.json", "[" * 20000 + "]" * 20000)
    w("deep.csv", "resolution,latency_ms\n" + "[" * 20000 + "\n")
    w("empty.json", "")
    b("garbage.bin", bytes(range(256)) * 64)
    w("nan.json", '{"format": NaN, "x": Infinity}')
    w("trunc.json", json.dumps(TINY)[:80])
    for name, text in NETWORKS.items():
        w(f"net_{name}.json", text)
    w("res_1e9.csv", "resolution,latency_ms\n" + "".join(f"{r},{1 + r / 100}\n"
                                                       for r in range(160, 224, 8)) + "1e9,9\n")
    w("res_neg.csv", "resolution,latency_ms\n" + "".join(f"{r},{1 + r / 100}\n"
                                                       for r in range(-160, 0, 16)))
    w("lat_nan.csv", "resolution,latency_ms\n" + "".join(f"{r},nan\n" for r in range(160, 240, 8)))
    w("cands_frac.csv", "resolution\n240\n240.5\n")
    w("cands_nan.csv", "resolution\nnan\n")
    w("cands_none.csv", "width\n240\n")
    for name, value in (("neg", "-3"), ("250", "250"), ("true", "true"), ("nan", "nan"),
                        ("inf", "inf")):
        w(f"acc_{name}.csv", f"fingerprint,resolution,accuracy\nabc,224,{value}\n")
    b("acc_latin1.csv", b"fingerprint,resolution,accuracy\nabc,224,7\xb0\n")
    w("acc_nocol.csv", "fingerprint,res,acc\nabc,224,70\n")
    for name, body in PY_MODULES.items():
        w(f"{name}.py", body)
    db = sqlite3.connect(root / "other.db")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()
    for version in ("abc", "7"):
        db = sqlite3.connect(root / f"schema_{version}.sqlite")
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "CREATE TABLE contexts (key TEXT, info TEXT);"
                         "CREATE TABLE networks (fingerprint TEXT, name TEXT, spec TEXT);"
                         "CREATE TABLE measurements (id INTEGER PRIMARY KEY);"
                         "CREATE TABLE samples (measurement_id INTEGER);")
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (version,))
        db.commit()
        db.close()
    (root / "adir").mkdir()


NETWORKS = {
    "w16_7": _net(stages__0__width=16.7), "w_true": _net(stages__0__width=True),
    "w_str": _net(stages__0__width="16"), "w_1e9": _net(stages__0__width=10**9),
    "w_neg": _net(stages__0__width=-1), "head_1e9": _net(head={"width": 10**9}),
    "depth_1e4": _net(stages__1__depth=10000), "depth_0": _net(stages__1__depth=0),
    "kernel_4": _net(stages__1__kernel=4), "kernel_33": _net(stages__1__kernel=33),
    "exp_1e6": _net(stages__1__expansion=1e6),
    "exp_inf": _net(stages__1__expansion=1).replace('"expansion": 1,', '"expansion": Infinity,', 1),
    "se_nan": _net(stages__0__se_ratio=1).replace('"se_ratio": 1', '"se_ratio": NaN', 1),
    "stages_obj": _net(stages={"0": 1}), "stage_list": _net(stages=[[8, 1]]),
    "no_stem": json.dumps({k: v for k, v in TINY.items() if k != "stem"}),
    "name_nl": _net(name="tiny\nforged,row"), "res_1e9": _net(resolution=10**9),
    "classes_0": _net(num_classes=0), "classes_true": _net(num_classes=True),
    "stride_3": _net(stages__1__stride=3), "act_gelu": _net(activation="gelu"),
    "not_object": "[1, 2, 3]",
}

PY_MODULES = {
    "syntax": "def lat(net)\n    return 1\n",
    "raising": "raise RuntimeError('no GPU here')\n",
    "exiting": "import sys\nsys.exit('licence file missing')\n",
    "importing": "import no_such_dependency_xyz\n",
    "ret": ("import sys\ndef nan(net):\n    return float('nan')\ndef neg(net):\n    return -1.0\n"
            "def true(net):\n    return True\ndef text(net):\n    return '7'\n"
            "def none(net):\n    return None\ndef boom(net):\n    raise ValueError('bad net')\n"
            "def quit(net):\n    sys.exit('dataset not mounted')\n"
            "def acc250(net):\n    return 250.0\ndef accneg(net):\n    return -3.0\n"
            "def lat(net):\n    return 8.0\ndef hang(net):\n    import time\n    time.sleep(600)\n"
            "def big(net):\n    return 10**400\n"
            "def exit0(net):\n    import os\n    os._exit(0)\n"
            "def chatty(net, value=8.0):\n    import sys\n    for _ in range(20_000):\n"
            "        print('x' * 99)\n        print('y' * 99, file=sys.stderr)\n"
            "    return value\n"
            "def chatty_acc(net):\n    return chatty(net, 70.0)\n"),
    "json": "def lat(net):\n    return 8.0\n",
}


@dataclass
class Case:
    category: str
    args: list[str]
    expect: str = "refuse"   # "keep" (refused mid-work, what was done kept), "accept", or
    #                          "refuse after a warning" (a data set's left-out files named first)
    setup: Callable[[Path], None] | None = None     # special files made in the sandbox
    env: dict = field(default_factory=dict)
    outputs: tuple[str, ...] | None = None          # globs an accepted case may change
    check: Callable[[Path, bytes, str], list[str]] | None = None
    result: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        env = "".join(f"{k}={v} " for k, v in self.env.items())
        return env + " ".join(self.args)


def cases() -> list[Case]:
    out: list[Case] = []
    add = lambda cat, args, expect="refuse": out.append(Case(cat, args, expect))  # noqa: E731
    sweep = ["sweep", "--device", "advdev:Curve", "--network", "tiny.json", "--resolutions",
             "64:96:8", "--out", "o.csv"]
    search = ["search", "--budget-ms", "9", "--latency", "py:m:lat", "--accuracy", "py:m:acc",
              "--out", "so"]
    compare = ["compare", "--budget-ms", "9", "--latency", "py:m:lat", "--accuracy", "py:m:acc",
               "--out", "co"]
    scale = ["scale", "--method", "compound", "--budget-ms", "9", "--latency", "py:m:lat"]
    jumps = ["jumps", "sweep.csv", "--out", "j"]
    lut_rec = ["lut", "record", "--device", "advdev:Curve", "--network", "tiny.json",
               "--resolutions", "64", "--out", "l.json"]

    # usage errors
    for cmd in (["sweep"], ["search"], ["scale"], ["compare"], ["jumps", "sweep.csv"],
                ["network", "show", "tiny.json"], ["table", "show", "x.csv"],
                ["lut", "show", "x.json"], ["devices"], ["table", "export", "t.csv"]):
        add("usage", cmd + ["--no-such-option"])
    for args in (["search"], ["scale"], ["compare", "--budget-ms", "9"], ["jumps"],
                 ["lut", "predict"], ["table", "export"], ["no-such-command"],
                 ["network", "frobnicate"], ["sweep", "--threads", "two"],
                 ["sweep", "--min-rounds", "1.5"], ["search", "--candidates", "many"],
                 ["jumps", "sweep.csv", "--out"], ["lut", "predict", "--lut"]):
        add("usage", args)

    # numbers: NaN, infinities, out of physical range
    numeric = [
        (sweep, "--ci-target-pct", ["nan", "inf", "-inf", "-1", "0", "101", "1e308"]),
        (sweep, "--time-cap-s", ["nan", "-inf", "-1", "0"]),
        (sweep, "--min-rounds", ["-1", "0", "nan"]), (sweep, "--max-rounds", ["-1", "0"]),
        (sweep, "--runs-per-visit", ["-1", "0"]),
        (search, "--budget-ms", ["nan", "inf", "-inf", "-1", "0"]),
        (search, "--candidates", ["-1", "0"]),
        (compare, "--budget-ms", ["nan", "inf", "-1", "0"]), (compare, "--candidates", ["0"]),
        (scale, "--budget-ms", ["nan", "inf", "-inf", "-1", "0"]),
        (jumps, "--z-min", ["nan", "inf", "-inf", "-5", "0"]),
        (jumps, "--budget-ms", ["nan", "-1", "0"]),
        (jumps, "--min-latency-ms", ["nan", "-1"]),
        (jumps, "--min-jump-pct", ["nan", "-1", "-inf"]), (jumps, "--neighbours", ["-1"]),
        (lut_rec, "--ci-target-pct", ["nan", "0"]), (lut_rec, "--time-cap-s", ["nan"]),
        (lut_rec, "--max-width-steps", ["-1"]), (lut_rec, "--calibration", ["-1"]),
        (["lut", "predict", "--lut", "x.json", "--network", "tiny.json"], "--resolution",
         ["0", "99999", "-5"]),
        (["network", "show", "tiny.json"], "--resolution", ["0", "99999", "-5"]),
    ]
    for base, option, values in numeric:
        for v in values:
            args = list(base)
            if option in args:   # replace a value the base already gives
                args[args.index(option) + 1] = v
            else:
                args += [option, v]
            add("numbers", args)
    add("numbers", lut_rec + ["--statistic", "mean"])

    # resolution grids and ranges that cannot be built
    for grid in ("32:99999999999:1", "1e9", "16,32", "400:160:4", "32:2048:0", "a:b", "",
                 "-32:64:8", "32:64:-8", "nan", "224.5", "1:2:3:4", ",,"):
        add("ranges", sweep[:5] + ["--resolutions", grid, "--out", "o.csv"])
    for grid in ("32:99999999999:1", "99999", "nan"):
        add("ranges", lut_rec[:5] + ["--resolutions", grid, "--out", "l.json"])
        add("ranges", search + ["--resolutions", grid])
    for f in ("cands_frac.csv", "cands_nan.csv", "cands_none.csv", "res_1e9.csv"):
        add("ranges", search + ["--resolutions-from", f])
    add("ranges", search + ["--resolutions", "224", "--resolutions-from", "sweep.csv"])
    add("ranges", search + ["--stages", "2,99"])
    add("ranges", search + ["--stages", "x"])

    # output paths: under a regular file at any depth, a directory where a file goes
    for sub in ("afile/x", "afile/a/b/x"):
        add("outputs", sweep[:-1] + [sub + ".csv"])
        add("outputs", sweep + ["--jumps-out", sub])
        add("outputs", search[:-1] + [sub])
        add("outputs", compare[:-1] + [sub])
        add("outputs", scale + ["--out", sub + ".json"])
        add("outputs", jumps[:-1] + [sub])
        add("outputs", ["table", "export", sub + ".csv"])
        add("outputs", lut_rec[:-1] + [sub + ".json"])
        add("outputs", ["accuracy", "export", sub + ".csv"])
    for args in (sweep[:-1] + ["adir"], scale + ["--out", "adir"], ["table", "export", "adir"],
                 lut_rec[:-1] + ["adir"], search[:-1] + ["afile"], jumps[:-1] + ["afile"]):
        add("outputs", args)

    # files: not UTF-8, nested too deeply, NaN/Infinity, empty, truncated, binary garbage
    bad_files = ("latin1.json", "latin1.csv", "deep.json", "deep.csv", "empty.json",
                 "garbage.bin", "nan.json", "trunc.json", "missing.json", "adir")
    readers = [
        lambda f: ["network", "show", f], lambda f: sweep[:5] + ["--network", f],
        lambda f: ["table", "export", "t.csv", "--network", f],
        lambda f: ["lut", "predict", "--lut", f, "--network", "tiny.json", "--resolution", "64"],
        lambda f: ["lut", "show", f], lambda f: ["table", "show", f],
        lambda f: ["table", "import", f], lambda f: ["jumps", f, "--out", "j"],
        lambda f: search + ["--resolutions-from", f],
        lambda f: search[:5] + ["--accuracy", f"table:{f}", "--out", "so"],
        lambda f: search[:3] + ["--latency", f"table:{f}"] + search[5:],
        lambda f: search[:3] + ["--latency", f"lut:{f}"] + search[5:],
        lambda f: sweep[:1] + ["--device", f"table:{f}"] + sweep[3:],
    ]
    for reader in readers:
        for f in bad_files:
            add("files", reader(f))
    for f in ("res_1e9.csv", "res_neg.csv", "lat_nan.csv"):
        add("files", ["jumps", f, "--out", "j"])
    for name in ("neg", "250", "true", "nan", "inf", "latin1", "nocol"):
        add("files", search[:5] + ["--accuracy", f"table:acc_{name}.csv", "--out", "so"])

    # network specs: wrong types, truncation, sizes that cannot be built
    for name in NETWORKS:
        add("networks", ["network", "show", f"net_{name}.json"])
    for name in ("w16_7", "depth_1e4", "head_1e9", "name_nl"):
        add("networks", sweep[:3] + ["--network", f"net_{name}.json"] + sweep[5:])

    # stores that are not latency-lab stores
    for store in ("other.db", "garbage.bin", "afile", "adir", "afile/x.sqlite",
                  "schema_abc.sqlite", "schema_7.sqlite"):
        add("stores", sweep + ["--store", store])
        add("stores", ["table", "export", "t.csv", "--store", store])
        add("stores", ["table", "import", "sweep.csv", "--store", store])
        add("stores", ["accuracy", "show", "--store", store])

    # py: modules and functions
    for mod in ("syntax", "raising", "exiting", "importing"):
        add("py", scale + ["--latency", f"py:{mod}:lat"])
        add("py", search[:5] + ["--accuracy", f"py:{mod}:acc", "--out", "so"])
    for func in ("nan", "neg", "true", "text", "none", "boom", "quit", "missing"):
        add("py", scale[:-1] + [f"py:ret:{func}"])
    for func in ("true", "text", "boom", "quit", "acc250", "accneg", "nan", "hang,timeout=2"):
        add("py", search[:5] + ["--accuracy", f"py:ret:{func}", "--out", "so"], "keep")
    for target in ("ret:acc250,timeout=-1", "ret:acc250,timeout=nan", "ret:acc250,retries=2"):
        add("py", search[:5] + ["--accuracy", f"py:{target}", "--out", "so"])
    for target in ("ret:hang,timeout=2", "ret:lat,timeout=0", "ret:lat,timeout=nan",
                   "ret:lat,retries=3", "no_such_module_xyz:f", "ret", "ret:", ":lat",
                   "../ret.py:lat", "adir/x.py:lat"):
        add("py", scale[:-1] + [f"py:{target}"])

    # devices and driver options
    for dev in ("nope", "json:JSONDecoder", "os:path", "table:", "lut:missing.json",
                "advdev:NoSuchClass", "no_module_xyz:Dev"):
        add("devices", sweep[:1] + ["--device", dev] + sweep[3:])
    for opt in (["-O", "x"], ["-O", "=1"], ["-O", "threads=two"], ["-O", "nonsense=1"],
                ["-O", "sleep=fast"], ["--threads", "0"], ["--affinity", "99"]):
        add("devices", sweep + opt)
    add("devices", sweep[:1] + ["--device", "pixel2", "-O", "remote_dir=-rf", "-O",
                                "binary=afile"] + sweep[3:])

    # inputs that are fine and must be accepted
    add("accepted", ["network", "show", "tiny.json", "--json"], "accept")
    add("accepted", scale + ["--out", "deep/new/dir/c.json"], "accept")
    add("accepted", scale[:-1] + ["py:json:lat"], "accept")
    add("accepted", ["search", "--budget-ms", "8.785", "--latency", "py:m:wide", "--accuracy",
                     "table:acc_bom.csv", "--out", "so"], "accept")
    add("accepted", jumps, "accept")
    add("accepted", sweep + ["--store", "zero.sqlite"], "accept")     # a 0-byte file: a new store
    add("accepted", sweep[:5] + ["--resolutions", "64,72,", "--out", "o.csv"], "accept")
    return out + r3.cases(Case, sweep, search, compare, scale, jumps, lut_rec)


def _extra_fixtures(root: Path) -> None:
    """Fixtures that depend on the package (the B0 fingerprint) or must exist empty."""
    from latency_lab.network.presets import get

    fp = get("efficientnet-b0").fingerprint
    (root / "acc_bom.csv").write_bytes(
        f"fingerprint,resolution,accuracy\n{fp},224,70\n".encode("utf-8-sig"))
    (root / "zero.sqlite").write_bytes(b"")
    (root / "matplotlib").mkdir()
    (root / "matplotlib" / "__init__.py").write_text("raise RuntimeError('shadowed!')\n")


def run_case(case: Case, template: Path, work: Path, index: int) -> Case:
    box = work / f"case{index:03d}"
    shutil.copytree(template, box, symlinks=True)
    if case.setup:
        case.setup(box)
    before = r3.snapshot(box)
    env = dict(os.environ, LATENCY_LAB_CACHE=str(box / ".cache"),
               PYTHONPATH=str(box / "devmods"), COLUMNS="100", **case.env)
    env.pop("LATENCY_LAB_BENCHMARK_BINARY", None)
    limit = HANG_S if case.category == "hangs" else TIMEOUT_S
    t = time.monotonic()
    out = b""
    try:
        p = subprocess.run([str(EXE), *case.args], cwd=box, env=env, capture_output=True,
                           timeout=limit, stdin=subprocess.DEVNULL)
        rc, err, out = p.returncode, p.stderr.decode(errors="replace"), p.stdout
    except subprocess.TimeoutExpired as exc:
        rc, err = "timeout", (exc.stderr or b"").decode(errors="replace")
    seconds = time.monotonic() - t
    after = r3.snapshot(box)
    changed = r3.changes(before, after)
    new = [c for c in changed if c not in before]
    lines = err.strip().splitlines()
    if case.expect.startswith("refuse") or case.expect == "keep":
        problems = [] if rc == 2 else [f"exit {rc}"]
        warned = case.expect == "refuse after a warning" and len(lines) == 2 and \
            lines[0].startswith("warning: ")
        if not lines or not lines[-1].startswith("error: ") or (
                case.expect.startswith("refuse") and len(lines) != 1 and not warned):
            problems.append(f"{len(lines)} stderr lines")
        if changed and case.expect.startswith("refuse"):
            problems.append(f"changed {', '.join(changed[:3])}")
        if case.expect == "keep" and "so/trace.csv" not in new:
            problems.append("the trace of what was done is lost")
    else:
        problems = [] if rc == 0 else [f"exit {rc}"]
        if case.outputs is not None:
            import fnmatch

            stray = [c for c in changed if not any(fnmatch.fnmatch(c, g) for g in case.outputs)]
            if stray:
                problems.append(f"changed outside its outputs: {', '.join(stray[:3])}")
    if case.check:
        problems += case.check(box, out, err)
    if "Traceback" in err:
        problems.append("traceback")
    case.result = {"clean": not problems, "problems": problems, "exit": rc,
                   "stderr_last": lines[-1][:300] if lines else "", "seconds": round(seconds, 2)}
    shutil.rmtree(box, ignore_errors=True)
    if problems:       # as it happens: a long run shows what is not clean before its end
        print(f"NOT clean [{case.category}] {case.name}: {', '.join(problems)}: "
              f"{case.result['stderr_last']}", flush=True)
    return case


# -- integrity scenarios ------------------------------------------------------------------------

def _sweep_args(out: str, store: str, sleep: float = 0.0, grid: str = "64:256:8") -> list[str]:
    return [str(EXE), "sweep", "--device", "advdev:Curve", "-O", f"sleep={sleep}", "--network",
            "tiny.json", "--resolutions", grid, "--out", out, "--store", store, "--no-jumps",
            "--min-rounds", "4", "--max-rounds", "8", "--ci-target-pct", "0.5"]


def _env(box: Path) -> dict:
    return dict(os.environ, LATENCY_LAB_CACHE=str(box / ".cache"),
                PYTHONPATH=str(box / "devmods"))


def _samples(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.Error:
        return 0


def _same_but_reused(a: Path, b: Path) -> bool:
    """Two sweep CSVs of the same points are byte for byte the same but for the column
    `reused` (issue 23: a point the second run took from the store says so)."""
    if not (a.exists() and b.exists()) or a.stat().st_size == 0:
        return False

    def rows(path: Path) -> list[list[str]]:
        import csv

        lines = list(csv.reader(path.read_text().splitlines()))
        drop = lines[0].index("reused") if "reused" in lines[0] else None
        return [[c for i, c in enumerate(line) if i != drop] for line in lines]
    return rows(a) == rows(b)


def scenario_full_disk(box: Path) -> dict:
    """A 2 MB tmpfs: the sweep CSV and a table export onto it fail cleanly and the files that
    were there stay whole; a store created on it leaves nothing. Needs `unshare -rm`."""
    if shutil.which("unshare") is None:
        return {"clean": None, "detail": "unshare not available: skipped"}
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        return {"clean": None, "detail": "user namespaces not allowed: skipped"}
    old = "resolution,latency_ms\n" + "".join(f"{r},{r / 100}\n" for r in range(160, 310, 10))
    script = f"""
set -u
mount -t tmpfs -o size=2m tmpfs {box}/full
printf '%s' '{old}' > {box}/full/sweep.csv
cp {box}/full/sweep.csv {box}/old.csv
head -c 2070000 /dev/zero > {box}/full/filler
{' '.join(_sweep_args(f'{box}/full/sweep.csv', f'{box}/s.sqlite', grid='64:2048:8'))} \
    2> {box}/sweep.err; echo $? > {box}/sweep.rc
{EXE} table export {box}/full/t.csv --store {box}/s.sqlite 2> {box}/export.err; \
    echo $? > {box}/export.rc
rm {box}/full/filler; head -c 2080000 /dev/zero > {box}/full/filler
{EXE} table import {box}/old.csv --store {box}/full/new.sqlite 2> {box}/store.err; \
    echo $? > {box}/store.rc
ls -a {box}/full > {box}/full.ls
cmp -s {box}/full/sweep.csv {box}/old.csv; echo $? > {box}/same.rc
"""
    (box / "full").mkdir()
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=_env(box), cwd=box,
                   capture_output=True, text=True, timeout=900)
    read = lambda n: (box / n).read_text().strip() if (box / n).exists() else "?"  # noqa: E731
    listing = read("full.ls").split()
    checks = {
        # the sweep prints its header first; the failure is its last line
        "sweep exit 2, the error as its last line, no traceback": read("sweep.rc") == "2"
        and read("sweep.err").splitlines()[-1].startswith("error: cannot write")
        and "Traceback" not in read("sweep.err"),
        "old sweep CSV byte-identical": read("same.rc") == "0",
        "table export exit 2, one line": read("export.rc") == "2"
        and read("export.err").count("\n") == 0,
        "store on a full disk: exit 2, one line": read("store.rc") == "2"
        and read("store.err").count("\n") == 0,
        "no temporary, no partial table, no store left": sorted(listing) ==
        [".", "..", "filler", "sweep.csv"],
    }
    return {"clean": all(checks.values()), "checks": checks,
            "stderr": [read("sweep.err"), read("export.err"), read("store.err")]}


def scenario_concurrent(box: Path) -> dict:
    """Two identical sweeps into one store at once: one owner per point, equal CSVs."""
    env = _env(box)
    a = subprocess.Popen(_sweep_args("a.csv", "s.sqlite", 0.05), cwd=box, env=env,
                         stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while _samples(box / "s.sqlite") == 0 and time.monotonic() - t < 120:
        time.sleep(0.05)
    b = subprocess.Popen(_sweep_args("b.csv", "s.sqlite", 0.05), cwd=box, env=env,
                         stderr=subprocess.PIPE, text=True)
    a.communicate(timeout=900)
    err_b = b.communicate(timeout=900)[1]
    with sqlite3.connect(box / "s.sqlite") as db:
        per_point = db.execute("SELECT MAX(n) FROM (SELECT COUNT(*) n FROM measurements GROUP "
                               "BY resolution)").fetchone()[0]
        leases = db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    same = _same_but_reused(box / "a.csv", box / "b.csv")
    said = [line for line in err_b.splitlines() if "being measured by process" in line]
    checks = {"both exit 0": a.returncode == 0 and b.returncode == 0,
              "one measurement per point": per_point == 1, "no lease left": leases == 0,
              "CSVs byte-identical but for the column reused": same,
              "the second says it waits": bool(said)}
    return {"clean": all(checks.values()), "checks": checks, "said": said[:1]}


def scenario_kill9(box: Path) -> dict:
    """kill -9 a sweep three times; each rerun resumes, nothing taken is lost; a last rerun
    gives the byte-identical CSV."""
    env = _env(box)
    counts = []
    for k in range(3):
        p = subprocess.Popen(_sweep_args("k.csv", "s.sqlite", 0.02), cwd=box, env=env,
                             stderr=subprocess.DEVNULL)
        target = _samples(box / "s.sqlite") + 200
        t = time.monotonic()
        while _samples(box / "s.sqlite") < target and time.monotonic() - t < 300:
            time.sleep(0.05)
        p.kill()
        p.wait()
        counts.append(_samples(box / "s.sqlite"))
    done = subprocess.run(_sweep_args("k.csv", "s.sqlite", 0.0), cwd=box, env=env,
                          capture_output=True, text=True, timeout=900)
    final = _samples(box / "s.sqlite")
    (box / "first.csv").write_bytes((box / "k.csv").read_bytes() if (box / "k.csv").exists()
                                    else b"")
    again = subprocess.run(_sweep_args("k.csv", "s.sqlite", 0.0), cwd=box, env=env,
                           capture_output=True, text=True, timeout=900)
    checks = {"samples never lost": counts == sorted(counts) and final >= counts[-1],
              "resumed run exit 0": done.returncode == 0 and again.returncode == 0,
              "rerun byte-identical but for the column reused":
              _same_but_reused(box / "first.csv", box / "k.csv")}
    return {"clean": all(checks.values()), "checks": checks, "samples_after_kills": counts,
            "samples_final": final}


def scenario_ctrl_c(box: Path) -> dict:
    p = subprocess.Popen(_sweep_args("c.csv", "s.sqlite", 0.02), cwd=box, env=_env(box),
                         stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while _samples(box / "s.sqlite") < 50 and time.monotonic() - t < 300:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    lines = err.strip().splitlines()
    checks = {"exit 130": p.returncode == 130, "no traceback": "Traceback" not in err,
              "the documented line": bool(lines) and lines[-1].startswith("interrupted: what "
                                                                          "was measured is in "
                                                                          "the store"),
              "samples kept": _samples(box / "s.sqlite") >= 50}
    return {"clean": all(checks.values()), "checks": checks, "last_line": lines[-1:]}


SCENARIOS = {"full disk (2 MB tmpfs)": scenario_full_disk,
             "two identical sweeps at once": scenario_concurrent,
             "kill -9 of a sweep, 3 times": scenario_kill9, "Ctrl-C": scenario_ctrl_c,
             **{name: (lambda box, fn=fn: fn(box, EXE, _env(box)))
                for name, fn in r3.SCENARIOS.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="run the cases whose command contains this")
    ap.add_argument("--no-scenarios", action="store_true")
    ap.add_argument("--scenarios-only", action="store_true")
    ap.add_argument("--scenario", default="", help="only the scenarios whose name has this")
    ap.add_argument("--category", default="", help="only the cases of these classes (a,b)")
    args = ap.parse_args()
    load_before, commit = os.getloadavg(), _commit()
    work = Path(tempfile.mkdtemp(prefix="adversarial-"))
    template = work / "template"
    template.mkdir()
    fixtures(template)
    _extra_fixtures(template)
    r3.fixtures(template, TINY, EXE, _env(template))
    shutil.rmtree(template / ".cache", ignore_errors=True)
    todo = [] if args.scenarios_only else [c for c in cases() if args.only in c.name
                                           and (not args.category
                                                or c.category in args.category.split(","))]
    t0 = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda ic: run_case(ic[1], template, work, ic[0]), enumerate(todo)))
    scen = {}
    if not args.no_scenarios and not args.only and not args.category:
        for k, (name, fn) in enumerate(SCENARIOS.items()):
            if args.scenario and args.scenario not in name:
                continue
            box = work / f"scenario{k}"    # two names began with "Ctrl-C": one folder, a crash
            shutil.copytree(template, box, symlinks=True)
            scen[name] = fn(box)
            print(f"scenario {name}: {'clean' if scen[name]['clean'] else scen[name]}",
                  flush=True)
    wall = time.monotonic() - t0
    shutil.rmtree(work, ignore_errors=True)
    partial = bool(args.only or args.category or args.scenario or args.scenarios_only
                   or args.no_scenarios)
    report(done, scen, wall, load_before, os.getloadavg(), commit, write=not partial)


def _commit() -> str:
    """The commit the run starts at (read before the first case: a commit made while it runs
    is not what it ran), with '+changes' when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout
    except OSError:
        return "?"
    return head + ("+changes" if dirty.strip() else "")


def report(done: list[Case], scen: dict, wall: float, load_before, load_after, commit: str,
           write: bool = True) -> None:
    """Print the summary; a full run (no filter) also writes results/benchmarks/."""
    clean = sum(c.result["clean"] for c in done)
    by_cat: dict[str, list[int]] = {}
    for c in done:
        by_cat.setdefault(c.category, [0, 0])
        by_cat[c.category][0] += c.result["clean"]
        by_cat[c.category][1] += 1
    ran = [v for v in scen.values() if v["clean"] is not None]
    lines = [f"# Adversarial replay: {clean} of {len(done)} malformed or edge inputs clean",
             "", f"`python benchmarks/adversarial.py` ({wall:.0f} s; load average "
             f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
             f"{os.cpu_count()} CPUs; commit {commit}). Clean: a refusal is exit 2 with one "
             "`error:` line (after one `warning:` line where a data set's left-out files are "
             "named) and nothing in its sandbox changed, every entry's type, inode, size, mtime "
             "and link target compared (an evaluator failing mid-search: exit 2, the error as "
             "the last line, the trace of what was done kept); an accepted input exits 0 and "
             "changes only the outputs it names; a hang is a case still running after "
             f"{HANG_S} s (the hangs class) or {TIMEOUT_S} s; none shows a traceback. Device "
             "nodes, FIFOs and sockets are made in each case's sandbox (mknod needs root: "
             f"{'made' if os.geteuid() == 0 else 'NOT made, not root'}); standard output is a "
             "link to /proc/self/fd/1 there, never /dev/stdout.", "",
             "| class | clean | cases |", "|---|---|---|"]
    lines += [f"| {k} | {v[0]} | {v[1]} |" for k, v in by_cat.items()]
    lines += ["", f"## Scenarios: {sum(v['clean'] for v in ran)} of {len(ran)} clean", ""]
    for name, v in scen.items():
        state = "skipped" if v["clean"] is None else ("clean" if v["clean"] else "NOT clean")
        checks = "; ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in v.get("checks", {}).items())
        lines.append(f"- {name}: {state}. {checks or v.get('detail', '')}")
    bad = [c for c in done if not c.result["clean"]]
    lines += ["", f"## Not clean ({len(bad)})", ""]
    lines += [f"- `{c.name}`: {', '.join(c.result['problems'])}: {c.result['stderr_last']}"
              for c in bad] or ["none"]
    text = "\n".join(lines) + "\n"
    print(text)
    if not write:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "adversarial.md").write_text(text)
    (OUT / "adversarial.json").write_text(json.dumps(
        {"clean": clean, "cases": len(done), "by_class": by_cat, "scenarios": scen,
         "wall_s": round(wall, 1), "load_before": load_before, "load_after": load_after,
         "commit": commit,
         "results": [{"class": c.category, "args": c.args, "expect": c.expect, **c.result}
                     for c in done]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
