"""Round 3 of the adversarial replay (issue 25): the classes `adversarial.py` did not cover.

Imported by `benchmarks/adversarial.py`, which runs these cases beside its own. A case here may
carry what the older ones did not need:

- `setup(box)`: special files made in the case's own sandbox before it runs (a FIFO, a
  character device node made with mknod, a UNIX socket, links to them): never a real device;
- `env`: environment variables of the case (LATENCY_LAB_CACHE_MAX_MB=nan);
- `outputs`: the paths (globs, relative to the sandbox) an accepted case may create or change;
  everything else in the sandbox must stay as it was (type, inode, size, mtime, link target);
- `check(box, stdout, stderr)`: further problems (a link still a link, the target written through).

A refused case must change nothing at all in its sandbox; the runner compares a snapshot of
every entry (never opening one: a FIFO would block) before and after. The signal scenarios
(SIGTERM to search, compare and lut record; a signal at start-up) are at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Callable

ROOT_USER = os.geteuid() == 0


# -- snapshots: what changed in a sandbox, without opening anything ------------------------------
def snapshot(box: Path) -> dict[str, tuple]:
    """Every entry under `box` (links not followed, .cache left out): its type, inode, size,
    mtime and link target."""
    out = {}
    for folder, dirs, files in os.walk(box):
        rel_folder = os.path.relpath(folder, box)
        if rel_folder.split(os.sep)[0] == ".cache":
            dirs[:] = []
            continue
        for name in dirs + files:
            p = os.path.join(folder, name)
            rel = os.path.normpath(os.path.join(rel_folder, name))
            if rel.split(os.sep)[0] == ".cache":
                continue
            st = os.lstat(p)
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0
            out[rel] = (stat.S_IFMT(st.st_mode), st.st_ino, size, mtime, link, st.st_rdev)
    return out


def changes(before: dict, after: dict) -> list[str]:
    """Paths created, removed or changed between two snapshots."""
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k))


# -- fixtures ---------------------------------------------------------------------------------------
def _png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A grey PNG; `rows` None: all zero rows, compressed (a small file of a large image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    if rows is None:
        comp = zlib.compressobj(9)
        line = b"\0" * (width + 1)
        body = b"".join(comp.compress(line) for _ in range(height)) + comp.flush()
    else:
        body = zlib.compress(rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _image_folder(folder: Path, per_class: int = 12) -> None:
    for c, shade in (("a", 40), ("b", 200)):
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            rows = b"".join(b"\0" + bytes([(shade + i + y) % 256]) * 8 for y in range(8))
            (folder / c / f"{i:02d}.png").write_bytes(_png(8, 8, rows))


PLAN_DEVICE = '\n[devices.curve0]\ndriver = "advdev:Curve"\n'
PLAN_PROTOCOL = '\n[protocol]\nmin_rounds = 2\nmax_rounds = 3\nruns_per_visit = 2\n'


def _plan(networks, resolutions='["64:72:8"]', extra: str = "", device: str = PLAN_DEVICE,
          protocol: str = PLAN_PROTOCOL) -> str:
    nets = json.dumps(networks)
    return (f"networks = {nets}\nresolutions = {resolutions}\nout = \"sweeps\"\n{extra}\n"
            f"{protocol}{device}")


def fixtures(root: Path, tiny: dict, exe: Path, env: dict) -> None:
    """Round-3 inputs, beside those of adversarial.fixtures (which made tiny.json, devmods/,
    afile, adir): stores (one damaged), a LUT and table, image folders, plans, result files."""
    w = lambda name, text: (root / name).write_text(text)  # noqa: E731

    def named(name: str) -> str:
        return json.dumps({**tiny, "name": name})
    w("net_dotdot.json", named("../../x"))
    w("net_slash.json", named("a/b/net"))
    w("net_a_b_net.json", named("a_b_net"))
    w("net_dots.json", named(".."))
    for key, path in (("w_1e308", ("stages", 0, "width")), ("stem_1e308", ("stem", "width")),
                      ("head_1e308", ("head", "width")), ("depth_1e308", ("stages", 1, "depth")),
                      ("classes_1e308", ("num_classes",)), ("res_1e308", ("resolution",)),
                      ("kernel_1e308", ("stages", 1, "kernel"))):
        d = json.loads(json.dumps(tiny))
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = 1e308
        w(f"net_{key}.json", json.dumps(d))
    d = json.loads(json.dumps(tiny))   # a stage-level kernel its blocks contradict
    d["stages"][1].update(kernel=5, blocks=[{"kernel": 3, "expansion": 4, "stride": 2},
                                            {"kernel": 3, "expansion": 4, "stride": 1}])
    w("net_stage_override.json", json.dumps(d))
    # result files whose fragments are lists, not objects
    w("res_perres_list.json", json.dumps({"network": None, "per_resolution": [[224, 1]]}))
    w("res_methods_list.json", json.dumps({"methods": [tiny]}))
    w("res_network_list.json", json.dumps({"network": [tiny]}))
    w("res_perres_item_list.json", json.dumps({"network": tiny,
                                               "per_resolution": [{"resolution": 64,
                                                                   "network": [1]}]}))
    # a real store, a table and a LUT from it, and a damaged copy
    run = lambda *args: subprocess.run([str(exe), *args], cwd=root, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=600, check=True)
    run("sweep", "--device", "advdev:Curve", "--network", "tiny.json", "--resolutions",
        "64:128:8", "--out", "base.csv", "--store", "store.sqlite", "--no-jumps",
        "--min-rounds", "2", "--max-rounds", "3")
    run("table", "export", "table.csv", "--store", "store.sqlite")
    run("lut", "record", "--device", "advdev:Curve", "--network", "tiny.json", "--resolutions",
        "64", "--out", "lut.json", "--store", "store.sqlite", "--max-rounds", "3",
        "--calibration", "1")
    run("search", "--budget-ms", "9", "--latency", "py:m:lat", "--accuracy", "py:m:acc",
        "--resolutions", "224", "--out", "so_state", "--store", "store.sqlite",
        "--candidates", "2", "--network", "tiny.json")
    state = json.loads((root / "so_state" / "state.json").read_text())
    state["latency_ms"] = {k: -abs(v) for k, v in state["latency_ms"].items()}
    (root / "so_state" / "state.json").write_text(json.dumps(state))
    import pandas as pd

    frame = pd.read_csv(root / "base.csv")
    frame.drop(columns=[c for c in frame.columns if c.startswith("ci_")]).to_csv(
        root / "base_noci.csv", index=False)
    damage_store(root / "store.sqlite", root / "corrupt.sqlite")
    # image folders: one good, and one per hazard (FIFOs are made per case, in setup)
    _image_folder(root / "imgs")
    for name in ("imgs_fifo", "imgs_loop", "imgs_bomb", "imgs_big", "imgs_dangling",
                 "imgs_nonutf8", "imgs_nonutf8_class", "imgs_sock"):
        shutil.copytree(root / "imgs", root / name)
    os.symlink(".", root / "imgs_loop" / "a" / "l1")
    os.symlink(".", root / "imgs_loop" / "a" / "l2")
    os.symlink("..", root / "imgs_loop" / "b" / "up")
    (root / "imgs_bomb" / "a" / "bomb.png").write_bytes(_png(100_000, 100_000, rows=b"")[:200])
    (root / "imgs_big" / "a" / "big.png").write_bytes(_png(10_000, 10_000))
    os.symlink("missing.png", root / "imgs_dangling" / "a" / "gone.png")
    (root / "imgs_nonutf8" / "a").joinpath(os.fsdecode(b"\xff\xfe.png")).write_bytes(
        (root / "imgs" / "a" / "00.png").read_bytes())
    (root / "imgs_nonutf8_class" / "b").rename(root / "imgs_nonutf8_class" / os.fsdecode(b"b\xff"))
    # Fashion-MNIST sources (issue 24's `dataset fashion-mnist`): a tiny real-format one, one
    # whose train-images header declares 2**22 x 2**21 x 2**21 values (2**64: an int64 is 0),
    # one whose labels file is cut short
    import numpy as np

    from latency_lab.training import fashion_mnist as fm
    from latency_lab.training.idx import write_idx

    rng = np.random.default_rng(0)
    for folder in ("fm", "fm_wrap", "fm_short"):
        (root / folder).mkdir()
        for (images, labels), n in zip(fm.FILES.values(), (2, 1)):
            y = np.repeat(np.arange(10, dtype=np.uint8), n)
            write_idx(root / folder / images, rng.integers(0, 256, (len(y), 28, 28),
                                                          dtype=np.uint8), compress=False)
            write_idx(root / folder / labels, y, compress=False)
    train_images, train_labels = next(iter(fm.FILES.values()))
    (root / "fm_wrap" / train_images).write_bytes(
        b"\0\0\x08\x03" + b"".join((2**k).to_bytes(4, "big") for k in (22, 21, 21)))
    short = root / "fm_short" / train_labels
    short.write_bytes(short.read_bytes()[:-3])
    # plans
    w("plan_res64.toml", _plan(["tiny.json"], resolutions="64"))
    w("plan_deep.toml", "x = " + "[" * 50_000 + "]" * 50_000 + "\n" + _plan(["tiny.json"]))
    w("plan_inf.toml", _plan(["tiny.json"], protocol=PLAN_PROTOCOL + "time_cap_s = inf\n"))
    w("plan_nan.toml", _plan(["tiny.json"], protocol=PLAN_PROTOCOL + "time_cap_s = nan\n"))
    w("plan_names.toml", _plan(["net_dotdot.json", "net_slash.json", "net_dots.json"]))
    w("plan_collide.toml", _plan(["net_slash.json", "net_a_b_net.json"]))
    w("plan_driver.toml", _plan(["tiny.json"], device='\n[devices.x]\ndriver = "nope"\n'))
    w("plan_option.toml", _plan(["tiny.json"], device=PLAN_DEVICE + 'options = { nonsense = 1 }\n'))
    w("plan_option_type.toml", _plan(["tiny.json"], device=PLAN_DEVICE
                                     + 'options = { sleep = "fast" }\n'))
    w("plan_out.toml", _plan(["tiny.json"]).replace('out = "sweeps"', 'out = "afile/x"'))
    w("plan_label.toml", _plan(["tiny.json"], device='\n[devices."../../up"]\n'
                                                     'driver = "advdev:Curve"\n'))
    w("plan_rounds.toml", _plan(["tiny.json"], protocol="\n[protocol]\nmin_rounds = -1\n"))
    # links that stay in the template (the special files they may point to are made per case)
    w("target.csv", "the old table\n")
    os.symlink("target.csv", root / "link.csv")
    os.symlink("adir", root / "link_dir")
    os.symlink("new_target.tflite", root / "link_new.tflite")
    os.symlink("fifo", root / "link_fifo")
    # standard output as /dev/stdout is, a link to /proc/self/fd/1, but in the sandbox: a
    # regression that replaced it would replace this link, not the machine's /dev/stdout (as
    # the first run of this corpus, before the fix, did)
    os.symlink("/proc/self/fd/1", root / "stdout")
    os.symlink("node", root / "link_node")


def damage_store(good: Path, bad: Path) -> None:
    """A copy of a real store with garbage over the cells of one b-tree page in its middle
    (the page header kept): the file header and schema stay readable, so it is not 'not a
    database', and PRAGMA quick_check names the page."""
    db = sqlite3.connect(good)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = good.read_bytes()
    n_pages = len(data) // page
    for p in [*range(n_pages // 2, n_pages), *range(1, n_pages // 2)]:
        damaged = bytearray(data)
        damaged[p * page + 8:(p + 1) * page] = bytes((i * 37 + p) % 251 for i in range(page - 8))
        bad.write_bytes(bytes(damaged))
        try:
            with sqlite3.connect(f"file:{bad}?mode=ro", uri=True) as check:
                failed = check.execute("PRAGMA quick_check").fetchall() != [("ok",)]
        except sqlite3.DatabaseError:
            failed = True
        for suffix in ("-wal", "-shm"):      # what the look made: a store as it was left
            Path(f"{bad}{suffix}").unlink(missing_ok=True)
        if failed:
            return
    raise RuntimeError(f"no damaged page of {good} fails quick_check")


# -- special files, made in each case's sandbox ------------------------------------------------
def specials(box: Path) -> None:
    """A FIFO, a character device node (mknod, root only) and a UNIX socket in the sandbox."""
    os.mkfifo(box / "fifo")
    if ROOT_USER:
        os.mknod(box / "node", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(box / "sock"))
    s.close()


def fifo_in(folder: str, name: str = "x.png") -> Callable[[Path], None]:
    def setup(box: Path) -> None:
        specials(box)
        os.mkfifo(box / folder / "a" / name)
    return setup


def sock_in(folder: str) -> Callable[[Path], None]:
    def setup(box: Path) -> None:
        specials(box)
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(box / folder / "a" / "s.png"))
        s.close()
    return setup


def _still(path: str, kind: int) -> Callable[[Path, bytes, str], list[str]]:
    def check(box: Path, stdout: bytes, stderr: str) -> list[str]:
        p = box / path
        if not os.path.lexists(p) or stat.S_IFMT(os.lstat(p).st_mode) != kind:
            return [f"{path} is no longer what it was"]
        return []
    return check


def _through(link: str, target: str, starts: bytes) -> Callable[[Path, bytes, str], list[str]]:
    def check(box: Path, stdout: bytes, stderr: str) -> list[str]:
        problems = []
        if not (box / link).is_symlink():
            problems.append(f"{link} was replaced (no longer a link)")
        t = box / target
        if not t.is_file() or not t.read_bytes().startswith(starts):
            problems.append(f"{target} (the link's target) was not written")
        return problems
    return check


def _stdout_starts(*prefixes: bytes) -> Callable[[Path, bytes, str], list[str]]:
    def check(box: Path, stdout: bytes, stderr: str) -> list[str]:
        if not any(stdout.startswith(p) or stdout[4:8] == p for p in prefixes):
            return [f"stdout does not hold the output ({stdout[:20]!r})"]
        return []
    return check


def _small_output(limit: int) -> Callable[[Path, bytes, str], list[str]]:
    def check(box: Path, stdout: bytes, stderr: str) -> list[str]:
        size = len(stdout) + len(stderr)
        return [] if size <= limit else [f"{size} bytes of output passed through"]
    return check


def silent_server(reply: bytes | None = None) -> int:
    """A local TCP server that accepts every connection and never answers (an ADB server
    stuck as in issue 25's report), or answers each request with `reply` (OKAY and a length
    that is not hex); its port. It lives as long as this process."""
    import threading

    if reply is not None:
        server = socket.create_server(("127.0.0.1", 0))

        def answer() -> None:
            while True:
                conn = server.accept()[0]
                if conn.recv(4096):
                    conn.sendall(reply)
                conn.close()

        threading.Thread(target=answer, daemon=True).start()
        return server.getsockname()[1]

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


# -- the cases ----------------------------------------------------------------------------------------
def cases(Case, sweep, search, compare, scale, jumps, lut_rec) -> list:
    """Round-3 cases, as `Case`s of adversarial.py (passed in: this module imports nothing of
    it), built from its base command lines."""
    out = []

    def add(cat, args, expect="refuse", **kw):
        kw.setdefault("setup", specials)
        out.append(Case(cat, list(args), expect, **kw))

    # outputs that are not regular files: refused before any work, the node untouched
    writers = {
        "network export tflite": lambda x: ["network", "export", "tiny.json", "--format",
                                            "tflite", "--out", x],
        "network export onnx": lambda x: ["network", "export", "tiny.json", "--format", "onnx",
                                          "--out", x],
        "sweep --out": lambda x: sweep[:-1] + [x],
        "sweep --jumps-out": lambda x: sweep + ["--jumps-out", x],
        "table export": lambda x: ["table", "export", x, "--store", "store.sqlite"],
        "scale --out": lambda x: scale + ["--out", x],
        "lut calibrate": lambda x: ["lut", "calibrate", "--lut", "lut.json", "--table",
                                    "table.csv", "--out", x],
        "lut record": lambda x: lut_rec[:-1] + [x],
        "accuracy export": lambda x: ["accuracy", "export", x, "--store", "store.sqlite"],
        "search --out": lambda x: search[:-1] + [x],
        "compare --out": lambda x: compare[:-1] + [x],
        "jumps --out": lambda x: jumps[:-1] + [x],
        "dataset synth": lambda x: ["dataset", "synth", "--out", x, "--classes", "2",
                                    "--per-class", "1", "--val-per-class", "1", "--size", "16"],
        "sweep-plan --out": lambda x: ["sweep-plan", "plan_res64.toml", "--out", x],
        "dataset fashion-mnist": lambda x: ["dataset", "fashion-mnist", "--source", "fm",
                                            "--out", x],
    }
    folders = {"sweep --jumps-out", "search --out", "compare --out", "jumps --out",
               "dataset synth", "sweep-plan --out", "dataset fashion-mnist"}
    kinds = {"fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK, "link_fifo": stat.S_IFLNK}
    if ROOT_USER:
        kinds.update(node=stat.S_IFCHR, link_node=stat.S_IFLNK)
    for name, make in writers.items():
        for target, kind in kinds.items():
            add("device nodes", make(target), check=_still(target, kind))
        if name not in folders:
            add("device nodes", make("link_dir"), check=_still("link_dir", stat.S_IFLNK))
    # a store that is not a regular file: refused (SQLite cannot keep one there; a FIFO blocks)
    for target, kind in kinds.items():
        add("device nodes", sweep + ["--store", target], check=_still(target, kind))
        add("device nodes", ["table", "import", "sweep.csv", "--store", target],
            check=_still(target, kind))
    # a link given as an output is written through (the link stays), /dev/stdout too
    add("device nodes", ["table", "export", "link.csv", "--store", "store.sqlite"], "accept",
        outputs=("target.csv",), check=_through("link.csv", "target.csv", b"format_version"))
    add("device nodes", ["network", "export", "tiny.json", "--format", "tflite", "--out",
                         "link_new.tflite"], "accept", outputs=("new_target.tflite",),
        check=_through("link_new.tflite", "new_target.tflite", b""))
    add("device nodes", ["table", "export", "stdout", "--store", "store.sqlite"],
        "accept", outputs=(), check=_stdout_starts(b"format_version"))
    add("device nodes", ["network", "export", "tiny.json", "--format", "tflite", "--out",
                         "stdout"], "accept", outputs=(), check=_stdout_starts(b"TFL3"))

    # names that become file names stay in their folder
    for net in ("net_dotdot.json", "net_slash.json", "net_dots.json"):
        add("names", lut_rec[:4] + ["--network", net, "--resolutions", "64", "--max-rounds",
                                    "3", "--calibration", "1"], "accept",
            outputs=("lut-*-advdev.json",))
    add("names", ["sweep-plan", "plan_names.toml", "--store", "s.sqlite"], "accept",
        outputs=("sweeps", "sweeps/curve0", "sweeps/curve0/*.csv", "sweeps/curve0/*_jumps",
                 "sweeps/curve0/*_jumps/*", "s.sqlite*"))
    add("names", ["sweep-plan", "plan_label.toml", "--store", "s.sqlite"], "accept",
        outputs=("sweeps", "sweeps/*", "sweeps/*/tiny.csv", "sweeps/*/tiny_jumps",
                 "sweeps/*/tiny_jumps/*", "s.sqlite*"))
    add("names", ["sweep-plan", "plan_collide.toml", "--store", "s.sqlite"])

    # damaged stores: refused when opened, with what to do
    for args in (sweep + ["--store", "corrupt.sqlite"],
                 ["table", "export", "t.csv", "--store", "corrupt.sqlite"],
                 ["table", "import", "sweep.csv", "--store", "corrupt.sqlite"],
                 ["accuracy", "show", "--store", "corrupt.sqlite"],
                 ["accuracy", "export", "a.csv", "--store", "corrupt.sqlite"],
                 ["jumps", "base_noci.csv", "--out", "j", "--store", "corrupt.sqlite"],
                 ["jumps", "base.csv", "--out", "j", "--store", "corrupt.sqlite"],
                 lut_rec + ["--store", "corrupt.sqlite"],
                 search + ["--store", "corrupt.sqlite"],
                 ["sweep-plan", "plan_res64.toml", "--store", "corrupt.sqlite"]):
        add("damaged stores", args)

    # hangs: FIFOs and sockets among images, link loops, a LUT space too large
    for folder, setup in (("imgs_fifo", fifo_in("imgs_fifo")), ("imgs_sock", sock_in("imgs_sock")),
                          ("imgs_loop", specials), ("imgs_dangling", specials),
                          ("imgs_big", specials), ("imgs_bomb", specials),
                          ("imgs_nonutf8", specials)):
        add("hangs", ["dataset", "show", folder], "accept", setup=setup, outputs=())
        add("hangs", search[:5] + ["--accuracy", f"train:{folder}", "--latency", "nope"],
            "refuse after a warning", setup=setup)
    add("hangs", ["dataset", "show", "imgs_nonutf8_class"])
    port = str(silent_server())       # the ADB server that never answers (issue 27's timeouts)
    add("hangs", ["sweep", "--device", "pixel2", "-O", "binary=afile", "--network", "tiny.json",
                  "--resolutions", "64", "--out", "o.csv"], env={"ANDROID_ADB_SERVER_PORT": port})
    add("hangs", ["dataset", "show", "fifo"])
    for steps in ("100000", "1000", "0,0,99999"):
        add("hangs", lut_rec[:-2] + ["--max-width-steps", steps, "--out", "l.json"])
    add("hangs", lut_rec[:-2] + ["--max-depth-steps", "100000", "--out", "l.json"])

    # numbers at the edges
    for name in ("w_1e308", "stem_1e308", "head_1e308", "depth_1e308", "classes_1e308",
                 "res_1e308", "kernel_1e308", "stage_override"):
        add("edges", ["network", "show", f"net_{name}.json"])
        add("edges", sweep[:3] + ["--network", f"net_{name}.json"] + sweep[5:])
    for v in ("nan", "-inf", "-1"):
        add("edges", ["cache", "prune", "--max-mb", v])
    for v in ("inf", "1e308", "0"):        # no cap (keeps every model), and everything pruned
        add("edges", ["cache", "prune", "--max-mb", v], "accept", outputs=())
    for v in ("nan", "inf", "-inf", "abc", "1e308", "0"):
        ok = "accept" if v in ("inf", "1e308") else "refuse"   # inf: no cap
        add("edges", ["cache", "show"], ok, env={"LATENCY_LAB_CACHE_MAX_MB": v}, outputs=())
        add("edges", ["cache", "prune"], ok, env={"LATENCY_LAB_CACHE_MAX_MB": v}, outputs=())
        add("edges", sweep + ["--no-jumps"], env={"LATENCY_LAB_CACHE_MAX_MB": v},
            expect="accept" if v in ("inf", "1e308") else "refuse", outputs=("o.csv",))
    add("edges", scale[:-1] + ["py:ret:big"])
    add("edges", search[:5] + ["--accuracy", "py:ret:big", "--out", "so"], "keep")
    for args in (lut_rec + ["--seed", "-1"],
                 ["dataset", "synth", "--out", "d", "--seed", "-1"],
                 ["dataset", "synth", "--out", "d", "--seed", "99999999999999999999999"],
                 ["dataset", "synth", "--out", "d", "--seed", "1e3"],
                 ["dataset", "show", "imgs", "--split-seed", "-1"],
                 ["dataset", "show", "imgs", "--val-fraction", "nan"],
                 search[:5] + ["--accuracy", "zen,seed=-1", "--out", "so"],
                 search[:5] + ["--accuracy", "train:imgs,seed=-1", "--out", "so"],
                 search[:5] + ["--accuracy", "train:imgs,split_seed=-1", "--out", "so"]):
        add("edges", args)
    for option in ("seed=99999999999999999999", "batch=99999999999999999999",
                   "seeds=2147483648", "epochs=99999999999999999999"):
        add("edges", search[:5] + ["--accuracy", f"train:imgs,{option}", "--out", "so"])
        add("edges", ["accuracy", "evaluate", "tiny.json", "--accuracy", f"train:imgs,{option}",
                      "--store", "s.sqlite"])
    add("edges", search[:5] + ["--accuracy", "zen,seed=99999999999999999999", "--out", "so"])
    for folder in ("fm_wrap", "fm_short", "imgs", "afile", "fifo"):
        add("edges", ["dataset", "fashion-mnist", "--source", folder, "--out", "d"])
    for args in (["--train-per-class", "0"], ["--val-per-class", "0"], ["--seed", "-1"],
                 ["--train-per-class", "99999999999999999999"]):
        add("edges", ["dataset", "fashion-mnist", "--source", "fm", "--out", "d", *args])
    add("edges", ["dataset", "fashion-mnist", "--source", "fm", "--out", "d"], "accept",
        outputs=("d", "d/*", "d/*/*", "d/*/*/*"))
    for plan in ("plan_deep.toml", "plan_nan.toml", "plan_rounds.toml"):
        add("edges", ["sweep-plan", plan, "--store", "s.sqlite"])
    add("edges", ["sweep-plan", "plan_res64.toml", "--store", "s.sqlite"], "accept",
        outputs=("sweeps", "sweeps/curve0", "sweeps/curve0/tiny*", "sweeps/curve0/tiny_jumps/*",
                 "s.sqlite*"))
    add("edges", ["sweep-plan", "plan_inf.toml", "--store", "s.sqlite"], "accept",
        outputs=("sweeps", "sweeps/curve0", "sweeps/curve0/tiny*", "sweeps/curve0/tiny_jumps/*",
                 "s.sqlite*"))
    add("edges", lut_rec + ["--time-cap-s", "inf"], "accept", outputs=("l.json",))
    for doc in ("res_perres_list.json#224", "res_methods_list.json", "res_network_list.json",
                "res_perres_item_list.json#64"):
        add("edges", ["network", "show", doc])
    add("edges", ["sweep", "--device", "pixel2", "--network", "tiny.json", "--resolutions",
                  "64", "--out", "o.csv"], env={"ANDROID_ADB_SERVER_PORT": "abc"})
    for reply in (b"OKAYzzzz", b"OKAY-001"):   # an ADB reply whose length is not 4 hex digits
        add("edges", ["sweep", "--device", "pixel2", "-O", "binary=afile", "--network",
                      "tiny.json", "--resolutions", "64", "--out", "o.csv"],
            env={"ANDROID_ADB_SERVER_PORT": str(silent_server(reply))})

    # refused before any work, not after it (or silently accepted)
    add("before work", scale[:-1] + ["py:ret:exit0"])
    add("before work", search[:5] + ["--accuracy", "py:ret:exit0", "--out", "so"], "keep")
    add("before work", search[:5] + ["--accuracy", "py:ret:exit0", "--out", "so", "--executor",
                                     "local:2"], "keep")
    add("before work", ["search", "--budget-ms", "8.785", "--latency", "py:m:wide", "--accuracy",
                        "py:ret:chatty_acc", "--out", "so", "--resolutions", "224"], "accept",
        outputs=("so", "so/*"), check=_small_output(200_000))
    add("before work", scale[:-1] + ["py:ret:chatty", "--out", "c.json"], "accept",
        outputs=("c.json",), check=_small_output(200_000))
    add("before work", ["search", "--budget-ms", "9", "--latency", "py:m:lat", "--accuracy",
                        "py:m:acc", "--resolutions", "224", "--out", "so_state", "--store",
                        "store.sqlite", "--candidates", "2", "--network", "tiny.json"])
    add("before work", ["search", "--budget-ms", "9", "--latency", "py:m:lat", "--accuracy",
                        "py:m:acc", "--resolutions", "224", "--out", "so_state", "--store",
                        "new.sqlite", "--candidates", "2", "--network", "tiny.json"])
    for args in (["network", "export", "tiny.json", "--format", "onnx", "--builder", "keras",
                  "--out", "x.onnx"],
                 ["network", "export", "tiny.json", "--format", "keras", "--builder", "direct",
                  "--out", "x.keras"],
                 scale + ["--executor", "local:2"],
                 ["cache", "prune", "--all", "--max-mb", "10"],
                 ["dataset", "synth", "--out", "d", "--val-per-class", "0"],
                 ["dataset", "synth", "--out", "d", "--per-class", "0"],
                 ["sweep-plan", "plan_driver.toml", "--store", "s.sqlite"],
                 ["sweep-plan", "plan_option.toml", "--store", "s.sqlite"],
                 ["sweep-plan", "plan_option_type.toml", "--store", "s.sqlite"],
                 ["sweep-plan", "plan_out.toml", "--store", "s.sqlite"],
                 ["sweep-plan", "plan_res64.toml", "--store", "s.sqlite", "--out", "afile/x"]):
        add("before work", args)
    for table in ("garbage.bin", "latin1.csv", "deep.csv", "missing.csv", "adir",
                  "lat_nan.csv"):   # issue 23's --latency-scale TABLE, read before measuring
        add("before work", ["search", "--budget-ms", "9", "--latency", "advdev:Curve",
                            "--accuracy", "py:m:acc", "--out", "so", "--resolutions", "64",
                            "--network", "tiny.json", "--store", "s.sqlite",
                            "--latency-scale", table])
    for address in ("ray://h:99999", "ray://h:0", "ray://bad host:10001", "ray://h:10001/x",
                    "ray://h:1e3"):
        add("before work", search + ["--executor", address])
    return out


# -- signal scenarios ----------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Every process below `pid` (from /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent:
                found.append(int(entry))
                todo.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _leases(store: Path) -> int | None:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    except sqlite3.Error:
        return None


def _terminate(args: list[str], box: Path, env: dict, wait_for: Callable[[int], bool],
               sig: int = signal.SIGTERM, limit_s: float = 300) -> dict:
    p = subprocess.Popen(args, cwd=box, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    t = time.monotonic()
    while not wait_for(p.pid) and time.monotonic() - t < limit_s and p.poll() is None:
        time.sleep(0.1)
    kids = _children(p.pid)
    p.send_signal(sig)
    try:
        err = p.communicate(timeout=120)[1].decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.kill()
        err = p.communicate()[1].decode(errors="replace") + "\n(no exit within 120 s)"
    time.sleep(1.0)
    lines = err.strip().splitlines()
    return {"rc": p.returncode, "lines": lines, "children": len(kids),
            "children_left": [k for k in kids if _alive(k)], "waited_s": time.monotonic() - t}


def signal_checks(r: dict, code: int) -> dict:
    return {f"exit {code}": r["rc"] == code, "no traceback": not any("Traceback" in x
                                                                    for x in r["lines"]),
            "one line, the last says so": bool(r["lines"]) and r["lines"][-1].startswith(
                ("interrupted", "terminated")),
            "no worker process left": not r["children_left"]}


def scenario_sigterm(box: Path, exe: Path, env: dict) -> dict:
    """SIGTERM to search (a live device with leases, local:2 workers), compare and lut record:
    exit 143, one line, leases given back, workers ended."""
    results, checks = {}, {}
    slow = ("import time\ndef acc(net):\n    time.sleep(0.5)\n    return 70.0\n"
            "def lat(net):\n    return 8.0\n")
    (box / "slow.py").write_text(slow)
    live = ["--latency", "advdev:Curve", "-O", "sleep=0.05", "--store", "t.sqlite",
            "--resolutions", "64", "--network", "tiny.json", "--min-rounds", "4"]
    leased = lambda pid: (_leases(box / "t.sqlite") or 0) > 0  # noqa: E731
    runs = {   # what each waits for before the signal: a lease in the store, or its workers
        "search, live device": ([str(exe), "search", "--budget-ms", "5", *live, "--accuracy",
                                 "py:slow:acc", "--out", "so"], leased),
        "search, local:2 workers": ([str(exe), "search", "--budget-ms", "9", "--latency",
                                     "py:slow:lat", "--accuracy", "py:slow:acc", "--out", "so2",
                                     "--executor", "local:2", "--resolutions", "64,72",
                                     "--network", "tiny.json"],
                                    lambda pid: len(_children(pid)) >= 2),
        "compare": ([str(exe), "compare", "--budget-ms", "5", *live, "--accuracy",
                     "py:slow:acc", "--out", "co"], leased),
        "lut record": ([str(exe), "lut", "record", "--device", "advdev:Curve", "-O",
                        "sleep=0.05", "--network", "tiny.json", "--resolutions", "64:96:8",
                        "--store", "t.sqlite", "--out", "l.json"], leased),
    }
    for name, (args, ready) in runs.items():
        (box / "t.sqlite").unlink(missing_ok=True)
        r = _terminate(args, box, env, ready)
        results[name] = {k: v for k, v in r.items() if k != "lines"} | {"last": r["lines"][-1:]}
        for k, ok in signal_checks(r, 143).items():
            checks[f"{name}: {k}"] = ok
        if ready is leased:
            checks[f"{name}: leases given back"] = _leases(box / "t.sqlite") == 0
        else:
            checks[f"{name}: it had workers when signalled"] = r["children"] >= 2
        checks[f"{name}: signalled while it worked"] = r["waited_s"] < 290
    return {"clean": all(checks.values()), "checks": checks, "runs": results}


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for `sig` yet (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)


def scenario_startup(box: Path, exe: Path, env: dict) -> dict:
    """SIGINT, SIGTERM and SIGHUP from 0 to 1.6 s after the first line of the program's main
    (its handlers show in /proc/PID/status): the signal's exit code, the signal's line last
    (before the sweep began, its only line), no error (a store left half made by an earlier
    signal was one), never a traceback. The runs share one store. Before that first line Python itself
    is starting (interpreter, site, the editable install's finder) and its default applies:
    how long that took is reported."""
    checks, seen, before_main = {}, [], []
    args = [str(exe), "sweep", "--device", "advdev:Curve", "-O", "sleep=0.05", "--network",
            "tiny.json", "--resolutions", "64:256:8", "--out", "st.csv", "--store", "st.sqlite",
            "--no-jumps"]
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6):
            t = time.monotonic()
            p = subprocess.Popen(args, cwd=box, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            while not _catches(p.pid, signal.SIGTERM) and time.monotonic() - t < 30:
                time.sleep(0.001)
            before_main.append(time.monotonic() - t)
            time.sleep(delay)
            p.send_signal(sig)
            err = p.communicate(timeout=120)[1].decode(errors="replace")
            lines = err.strip().splitlines()
            # once the sweep began (its header line) it prints its progress and what it wrote;
            # before, nothing but the signal's line
            began = any(x.startswith("tiny ") for x in lines)
            ok = (p.returncode == code and "Traceback" not in err
                  and not any(x.startswith("error:") for x in lines)
                  and (not lines or lines[-1].startswith(("interrupted: what was measured",
                                                          f"terminated ({sig.name})")))
                  and (began or len(lines) <= 1))
            seen.append({"signal": sig.name, "delay_s": delay, "rc": p.returncode,
                         "began": began, "last": lines[-1:] if ok else lines[-12:]})
            checks[f"{sig.name} {delay:g} s after main's first line"] = ok
    return {"clean": all(checks.values()), "checks": checks, "runs": seen,
            "start_before_main_s": [round(min(before_main), 3), round(max(before_main), 3)]}


def scenario_group_ctrl_c(box: Path, exe: Path, env: dict) -> dict:
    """A terminal's Ctrl-C (SIGINT to the whole process group) while a search's local:2 workers
    are starting, and later: exit 130, one line, no worker's traceback, no worker left."""
    (box / "slow.py").write_text("import time\ndef acc(net):\n    time.sleep(0.5)\n"
                                 "    return 70.0\ndef lat(net):\n"
                                 "    return 8.0 + sum(s['width'] for s in net['stages']) / 1e4\n")
    checks, seen = {}, []
    for k, delay in enumerate((0.0, 0.1, 0.3, 1.0, 2.0)):
        p = subprocess.Popen([str(exe), "search", "--budget-ms", "9", "--latency", "py:slow:lat",
                              "--accuracy", "py:slow:acc", "--out", f"g{k}", "--executor",
                              "local:2", "--network", "tiny.json", "--resolutions", "64,72"],
                             cwd=box, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        t = time.monotonic()
        while len(_children(p.pid)) < 3 and p.poll() is None and time.monotonic() - t < 120:
            time.sleep(0.01)
        time.sleep(delay)
        kids = _children(p.pid)
        os.killpg(p.pid, signal.SIGINT)
        err = p.communicate(timeout=120)[1].decode(errors="replace")
        time.sleep(1.0)
        lines = [x for x in err.strip().splitlines() if not x.startswith("r=")]
        ok = (p.returncode == 130 and "Traceback" not in err and len(lines) == 1
              and lines[0].startswith("interrupted: ") and not any(_alive(c) for c in kids))
        seen.append({"delay_s": delay, "rc": p.returncode, "children": len(kids),
                     "last": lines[-3:]})
        checks[f"{delay:g} s after its workers started"] = ok
    return {"clean": all(checks.values()), "checks": checks, "runs": seen}


SCENARIOS = {"SIGTERM to search, compare, lut record": scenario_sigterm,
             "signals during start-up": scenario_startup,
             "Ctrl-C to the process group, local:2 workers": scenario_group_ctrl_c}
