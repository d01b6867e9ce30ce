"""The store never loses or mixes measurements: foreign and damaged files, a full disk, the WAL,
and one owner per open measurement when several processes measure into one store."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_lab.cli.app import main
from latency_lab.measure import lease
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.measure.store import Store, StoreError

TESTS = Path(__file__).parent
FAST = Protocol(runs_per_visit=4, min_rounds=3, max_rounds=6, ci_target_pct=1.0, time_cap_s=60)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- files that are not (usable) latency-lab stores ------------------------------------------------

def test_a_foreign_sqlite_file_is_refused_without_being_touched(tmp_path, capsys):
    other = tmp_path / "app.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users VALUES (1, 'ada')")
    db.commit()
    db.close()
    before = _sha(other)
    rc = main(["table", "export", str(tmp_path / "t.csv"), "--store", str(other)])
    err = capsys.readouterr().err
    assert rc == 2 and "a SQLite database of another program (tables users)" in err
    assert err.count("\n") == 1
    assert _sha(other) == before                         # no latency-lab tables, no WAL mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
    assert sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize("version, message", [
    ("abc", "unreadable schema version 'abc'"),
    ("1.5", "unreadable schema version '1.5'"),
    ("7", "schema version 7, this latency-lab reads 1"),
])
def test_a_store_of_another_schema_is_refused_in_one_line(tmp_path, version, message):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (version,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=message):
        Store(path)


def _damaged_store(tmp_path, tiny, curve_device, first_page: int) -> Path:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        measure_points(curve_device(noise=0.01), [(tiny, r) for r in range(64, 400, 8)], store,
                       FAST)
    data = bytearray(path.read_bytes())
    page = 4096
    first = first_page if first_page >= 0 else len(data) // page + first_page
    assert len(data) > (first + 2) * page
    data[first * page:(first + 2) * page] = b"\xa5" * (2 * page)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("first_page", [1, -3])   # met on opening / by a later query
def test_a_damaged_page_is_one_line_wherever_it_is_met(tmp_path, tiny, curve_device, capsys,
                                                       first_page):
    path = _damaged_store(tmp_path, tiny, curve_device, first_page)
    rc = main(["table", "export", str(tmp_path / "t.csv"), "--store", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "is damaged" in err and ".recover" in err and err.count("\n") == 1
    assert not (tmp_path / "t.csv").exists()


def _quietly_damaged(tmp_path, tiny, curve_device) -> Path:
    """A store whose header, schema and meta read fine but one b-tree page's cells are garbage
    (the page header kept): only PRAGMA quick_check finds it, so every command met it."""
    good = tmp_path / "good.sqlite"
    with Store(good) as store:
        measure_points(curve_device(noise=0.01), [(tiny, r) for r in range(64, 400, 8)], store,
                       FAST)
    data, page = good.read_bytes(), 4096
    bad = tmp_path / "s.sqlite"
    for p in range(len(data) // page - 1, 1, -1):
        damaged = bytearray(data)
        damaged[p * page + 8:(p + 1) * page] = bytes((i * 37 + p) % 251 for i in range(page - 8))
        bad.write_bytes(bytes(damaged))
        try:
            with sqlite3.connect(f"file:{bad}?mode=ro", uri=True) as db:
                db.execute("SELECT value FROM meta").fetchall()
                failed = db.execute("PRAGMA quick_check").fetchall() != [("ok",)]
        except sqlite3.DatabaseError:
            failed = False        # met on opening: the test above covers that
        for suffix in ("-wal", "-shm"):
            Path(f"{bad}{suffix}").unlink(missing_ok=True)
        if failed:
            return bad
    raise AssertionError("no page whose damage only quick_check finds")


@pytest.mark.slow   # measures a store, then three commands
def test_a_store_that_fails_quick_check_is_refused_before_anything_is_written(
        tmp_path, tiny, curve_device, capsys):
    """sweep wrote into such a store and table export read it with exit 0; jumps --store never
    opened it (issue 25). Now each says it is damaged and what to do, and leaves it as it was."""
    bad = _quietly_damaged(tmp_path, tiny, curve_device)
    sha = _sha(bad)
    (tmp_path / "sweep.csv").write_text("resolution,latency_ms,ci_low_ms,ci_high_ms\n" + "".join(
        f"{r},{r / 100},{r / 100 - 0.01},{r / 100 + 0.01}\n" for r in range(160, 320, 8)))
    for args in (["sweep", "--device", "conftest:CurveDevice", "--network", str(tmp_path / "n.json"),
                  "--resolutions", "64", "--out", str(tmp_path / "o.csv")],
                 ["table", "export", str(tmp_path / "t.csv")],
                 ["jumps", str(tmp_path / "sweep.csv"), "--out", str(tmp_path / "j")]):
        (tmp_path / "n.json").write_text(tiny.to_json())
        assert main(args + ["--store", str(bad)]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is damaged (quick_check: " in err[0] and ".recover" in err[0]
        assert _sha(bad) == sha
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.sqlite")) == \
            ["s.sqlite"]
        assert not any((tmp_path / n).exists() for n in ("o.csv", "t.csv", "j"))


class _SignalAfterScript:
    """A connection whose executescript is followed by a signal (Python handles one between
    calls, never inside sqlite3's)."""

    def __init__(self, db):
        self._db = db

    def __getattr__(self, name):
        return getattr(self._db, name)

    def executescript(self, script):
        self._db.executescript(script)
        raise KeyboardInterrupt


def test_a_store_interrupted_while_it_is_made_is_none_or_whole(tmp_path, monkeypatch):
    """Ctrl-C 1.6 s after a sweep started (the corpus's start-up scenario) left a store with
    its tables and no schema row: every later run was refused ('unreadable schema version')."""
    from latency_lab.measure import store as store_mod

    connect = sqlite3.connect
    monkeypatch.setattr(store_mod.sqlite3, "connect",
                        lambda *a, **kw: _SignalAfterScript(connect(*a, **kw)))
    with pytest.raises(KeyboardInterrupt):
        Store(tmp_path / "s.sqlite")
    assert sorted(os.listdir(tmp_path)) == []    # a new store: nothing left
    monkeypatch.undo()
    # one made before the fix: its tables, no schema row, nothing measured; opening completes it
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.executescript(store_mod._SCHEMA)
    db.close()
    with Store(tmp_path / "old.sqlite") as store:
        assert store.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == \
            (str(store_mod.SCHEMA_VERSION),)
    # the schema row comes in the same transaction as the tables: a script stopped before its
    # COMMIT leaves no table
    db = sqlite3.connect(tmp_path / "half.sqlite")
    db.executescript("BEGIN;\n" + store_mod._SCHEMA)
    db.close()          # closed before COMMIT: rolled back
    with sqlite3.connect(tmp_path / "half.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone() == (0,)


def test_a_store_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(StoreError, match="not a regular file"):
        Store(tmp_path / "fifo")


# -- a full disk (a file-size limit stands in for it: the same write errors, no root needed) ----

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from latency_lab.cli.app import main
sys.exit(main({args!r}))
"""


def run_limited(args: list[str], limit: int, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.run([sys.executable, "-c", LIMITED.format(limit=limit, args=args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_a_store_that_cannot_be_created_leaves_no_file(tmp_path):
    p = run_limited(["table", "import", "nothing.csv", "--store", "new.sqlite"], 2000, tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: store new.sqlite: the disk is full")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_a_full_disk_keeps_the_old_table_and_leaves_no_temporary(tmp_path, tiny, curve_device):
    info = curve_device().info()
    with Store(tmp_path / "s.sqlite") as store:
        for r in range(64, 2048, 16):   # finished measurements, written directly (fast)
            mid = lease.claim(store, info, tiny, r).measurement_id
            store.add_samples(mid, 0, [1.0 + r / 1000, 1.1 + r / 1000, 0.9 + r / 1000])
            store.finish(mid, "ci_target")
    old = "an old table that must survive\n" * 10
    (tmp_path / "t.csv").write_text(old)
    # 48 KiB: the store's shared-memory file fits (32 KiB), the table (~75 KB) does not
    p = run_limited(["table", "export", "t.csv", "--store", "s.sqlite"], 49152, tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: cannot write t.csv: File too large")
    assert (tmp_path / "t.csv").read_text() == old
    assert sorted(os.listdir(tmp_path)) == ["s.sqlite", "t.csv"]


# -- the WAL -------------------------------------------------------------------------------------

@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_the_wal_is_checkpointed_every_round(tmp_path, tiny, curve_device):
    path = tmp_path / "s.sqlite"
    sizes = []

    class Watch(curve_device):
        def sample(self, spec, resolution, runs, warmup_runs=1):
            sizes.append(os.path.getsize(f"{path}-wal"))
            return super().sample(spec, resolution, runs, warmup_runs)

    with Store(path) as store:
        ms = measure_points(Watch(noise=0.05), [(tiny, r) for r in range(64, 320, 8)], store,
                            Protocol(runs_per_visit=50, min_rounds=8, max_rounds=8))
    n = sum(len(m.samples_ms) for m in ms)
    assert n == 32 * 8 * 50
    # a round appends a commit of a few 4 KiB pages per visit (64 visits: ~1.5 MB) and rewrites
    # the drift factors of every open point; without the checkpoint the WAL of 64 points
    # reached 3.6 MB by round 10 (SQLite checkpoints on its own only past 1000 pages, ~4 MB, and
    # never shrinks the file). With it, every round starts from an empty WAL and no round's WAL
    # outgrows the first's.
    rounds = [sizes[k:k + 32] for k in range(0, len(sizes), 32)]
    assert all(r[0] == 0 for r in rounds)
    assert max(rounds[-1]) <= 1.3 * max(rounds[0])


# -- one owner per open measurement ---------------------------------------------------------------

WORKER = """
import json, sys, time
sys.path.insert(0, {tests!r})
from conftest import CurveDevice, TINY
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.network.spec import NetworkSpec
from latency_lab.measure.store import Store

class Slow(CurveDevice):
    def sample(self, spec, resolution, runs, warmup_runs=1):
        time.sleep({sleep})
        return super().sample(spec, resolution, runs, warmup_runs)

tiny = NetworkSpec.from_dict(TINY)
points = [(tiny, r) for r in range({start}, {stop}, 8)]
with Store({store!r}) as store:
    ms = measure_points(Slow(noise=0.01, seed={seed}), points, store,
                        Protocol(runs_per_visit=4, min_rounds=4, max_rounds=8, ci_target_pct=0.2))
print(json.dumps([[m.resolution, m.latency_ms, len(m.samples_ms)] for m in ms]))
"""


def _worker(tmp_path, store, start, stop, seed, sleep=0.01):
    code = WORKER.format(tests=str(TESTS), store=str(store), start=start, stop=stop, seed=seed,
                         sleep=sleep)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def _samples(store: Path) -> int:
    db = sqlite3.connect(store)
    try:
        return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    finally:
        db.close()


def _wait_for_samples(store: Path, n: int = 1, timeout: float = 60) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if store.exists():
            try:
                if _samples(store) >= n:
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError("the first process never took a sample")


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_two_processes_never_measure_the_same_open_point(tmp_path):
    """The second sweep measures its own points and waits for the first's, then reuses them:
    one measurement per point, each round of it taken by one process, equal results."""
    store = tmp_path / "s.sqlite"
    a = _worker(tmp_path, store, 64, 160, seed=1, sleep=0.05)
    _wait_for_samples(store)
    b = _worker(tmp_path, store, 64, 200, seed=2)
    out_a, err_a = a.communicate(timeout=300)
    out_b, err_b = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, err_a + err_b
    # the 12 shared points: held by the first process (or already finished by it, then reused)
    said = re.search(r"(\d+) of 17 points are being measured by process (\d+) on", err_b)
    assert said and 1 <= int(said[1]) <= 12 and int(said[2]) == a.pid
    assert "measuring the other 5, then waiting for those" in err_b
    ra, rb = json.loads(out_a), json.loads(out_b)
    assert rb[:12] == ra                                  # the same measurements, not remeasured
    db = sqlite3.connect(store)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT resolution) FROM measurements").fetchone() \
        == (17, 17)
    # every (measurement, round) was one visit of 4 samples by one process
    assert db.execute("SELECT MAX(n) FROM (SELECT COUNT(*) n FROM samples GROUP BY "
                      "measurement_id, round)").fetchone()[0] == 4
    assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


@pytest.mark.slow   # several seconds (subprocesses or thousands of samples)
def test_kill_9_leaves_a_lease_that_the_next_run_takes_over(tmp_path, tiny, curve_device):
    store = tmp_path / "s.sqlite"
    a = _worker(tmp_path, store, 64, 160, seed=1, sleep=0.05)
    _wait_for_samples(store, 40)
    os.kill(a.pid, signal.SIGKILL)
    a.communicate(timeout=60)
    taken = _samples(store)
    db = sqlite3.connect(store)
    assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 12   # left behind
    db.close()
    with Store(store) as s:
        ms = measure_points(curve_device(noise=0.01), [(tiny, r) for r in range(64, 160, 8)], s,
                            Protocol(runs_per_visit=4, min_rounds=4, max_rounds=8,
                                     ci_target_pct=0.2))
        assert s.db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
        assert s.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 12
    assert sum(len(m.samples_ms) for m in ms) >= taken    # resumed: nothing taken was lost


def test_leases_are_given_back_when_a_run_is_interrupted(tmp_path, tiny, curve_device):
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            measure_points(curve_device(fail_after=5), [(tiny, r) for r in (64, 96, 128)],
                           store, FAST)
        assert store.db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
        assert store.db.execute("SELECT COUNT(*) FROM measurements WHERE status='open'"
                                ).fetchone()[0] == 3


def test_a_lease_of_a_running_process_is_respected_and_of_a_gone_one_taken(tmp_path, tiny,
                                                                          curve_device):
    """Same host: alive is a process id that exists with the same start time."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store(tmp_path / "s.sqlite") as store:
            dev = curve_device()
            claim = lease.claim(store, dev.info(), tiny, 64)
            store.db.execute("UPDATE leases SET pid=?, started=?", (sleeper.pid,
                                                                   lease._start_time(sleeper.pid)))
            store.db.commit()
            assert lease.reclaim(store, claim.measurement_id).status == "held"
            store.db.execute("UPDATE leases SET started='1'")  # the id now names another process
            store.db.commit()
            assert lease.reclaim(store, claim.measurement_id).status == "resume"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lease_from_another_host_counts_as_gone_only_when_stale(tmp_path, tiny, curve_device):
    with Store(tmp_path / "s.sqlite") as store:
        claim = lease.claim(store, curve_device().info(), tiny, 64)
        store.db.execute("UPDATE leases SET host='elsewhere', renewed_at=?", (time.time(),))
        store.db.commit()
        assert lease.reclaim(store, claim.measurement_id).status == "held"
        store.db.execute("UPDATE leases SET renewed_at=?",
                         (time.time() - lease.STALE_AFTER_S - 1,))
        store.db.commit()
        assert lease.reclaim(store, claim.measurement_id).status == "resume"


@pytest.mark.slow
def test_the_wait_for_another_process_is_announced(tmp_path, tiny, curve_device, caplog):
    """A held point is collected as soon as its owner finishes it (here: by hand)."""
    import threading

    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        claim = lease.claim(store, curve_device().info(), tiny, 64)
        store.add_samples(claim.measurement_id, 0, [1.0, 1.1, 0.9])
        store.db.execute("UPDATE leases SET host='elsewhere', renewed_at=?", (time.time(),))
        store.db.commit()

    def finish_later():
        time.sleep(1.0)
        with Store(path) as other:
            other.finish(claim.measurement_id, "ci_target")

    t = threading.Thread(target=finish_later)
    t.start()
    with Store(path) as store, caplog.at_level("WARNING"):
        ms = measure_points(curve_device(), [(tiny, 64), (tiny, 96)], store, FAST)
    t.join()
    assert "1 of 2 points are being measured by process" in caplog.text
    assert ms[0].samples_ms == (1.0, 1.1, 0.9) and ms[0].stop_reason == "ci_target"
    assert len(ms[1].samples_ms) >= FAST.min_rounds * FAST.runs_per_visit
