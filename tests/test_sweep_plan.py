"""`latency-lab sweep-plan`: the plan file, stores merged across hosts, device actors on Ray."""

from __future__ import annotations

import sqlite3
import time

import pytest

from latency_lab.cli.app import main
from latency_lab.measure.protocol import Protocol, measure_points
from latency_lab.measure.store import Store
from latency_lab.measure.store_merge import export_measurements, import_measurements
from latency_lab.scaleout.sweep_plan import PlanError, load_plan, plan_jobs

FAST = 'min_rounds = 2\nmax_rounds = 3\nruns_per_visit = 2\nwarmup_first_visit = 1\n'


def _plan(tmp_path, tiny, devices: str, extra: str = "") -> str:
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    text = (f'networks = ["tiny.json"]\nresolutions = ["64:96:32", "80"]\nout = "sweeps"\n'
            f'host_store_dir = "{tmp_path / "hosts"}"\n{extra}\n[protocol]\n{FAST}\n{devices}')
    (tmp_path / "plan.toml").write_text(text)
    return str(tmp_path / "plan.toml")


CPU2 = ('[devices.cpu0]\ndriver = "cpu"\noptions = { threads = 1, affinity = "0" }\n'
        '[devices.cpu1]\ndriver = "cpu"\noptions = { threads = 1, affinity = "1" }\n')


@pytest.fixture(scope="session")
def converted(model_dir):
    """The cpu devices' options with the tiny network converted once for the session."""
    from conftest import TINY
    from latency_lab.models.build_keras import tflite_path
    from latency_lab.network.spec import NetworkSpec

    tflite_path(NetworkSpec.from_dict(TINY), model_dir)
    return CPU2.replace('affinity = "0" }', f'affinity = "0", model_dir = "{model_dir}" }}') \
               .replace('affinity = "1" }', f'affinity = "1", model_dir = "{model_dir}" }}')


def test_a_plan_is_networks_times_devices_over_the_union_of_ranges(tmp_path, tiny):
    plan = load_plan(_plan(tmp_path, tiny, CPU2 + '[devices.phone]\ndriver = "pixel2"\n'
                                              'resources = { pixel2 = 1 }\nhost = "10.0.0.7"\n'))
    assert plan.resolutions == (64, 80, 96) and plan.out == tmp_path / "sweeps"
    assert plan.protocol == Protocol(min_rounds=2, max_rounds=3, runs_per_visit=2,
                                     warmup_first_visit=1)
    jobs = plan_jobs(plan)
    assert [j.name for j in jobs] == ["tiny on cpu0", "tiny on cpu1", "tiny on phone"]
    cpu0, phone = plan.devices[0], plan.devices[2]
    assert dict(cpu0.options) == {"threads": 1, "affinity": "0"}
    assert cpu0.placement().as_dict() == {"CPU": 1.0}
    assert phone.placement().as_dict() == {"CPU": 1.0, "pixel2": 1.0, "node:10.0.0.7": 0.001}
    assert jobs[0].csv_path(plan.out) == tmp_path / "sweeps" / "cpu0" / "tiny.csv"


@pytest.mark.parametrize("body, message", [
    ('networks = ["tiny.json"]\nresolutions = "64"\n', "needs devices"),
    ('networks = ["tiny.json"]\nresolutions = "64"\nfoo = 1\n[devices.a]\ndriver = "cpu"\n',
     "unknown key 'foo'"),
    ('networks = ["tiny.json"]\nresolutions = "64"\n[devices.a]\nopts = 1\n',
     "devices.a: unknown key 'opts'"),
    ('networks = ["tiny.json"]\nresolutions = "64"\n[devices.a]\ncpus = 1\n',
     'devices.a: needs driver = "NAME"'),
    ('networks = ["tiny.json"]\nresolutions = "64"\n[devices.a]\ndriver = "cpu"\ngpus = -1\n',
     "devices.a.gpus = -1: need a number >= 0"),
    ('networks = ["nope-net"]\nresolutions = "64"\n[devices.a]\ndriver = "cpu"\n',
     "networks[0]: unknown network"),
    ('networks = ["tiny.json"]\nresolutions = ["64", "9:1"]\n[devices.a]\ndriver = "cpu"\n',
     "resolutions[1]: "),
    ('networks = ["tiny.json"]\nresolutions = "64"\n[protocol]\nrounds = 3\n'
     '[devices.a]\ndriver = "cpu"\n', "protocol: "),
    ('networks = ["tiny.json"\n', "is not valid TOML"),
])
def test_bad_plans_are_one_line_naming_the_field(tmp_path, tiny, capsys, body, message):
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    (tmp_path / "plan.toml").write_text(body)
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_plan(tmp_path / "plan.toml")
    assert main(["sweep-plan", str(tmp_path / "plan.toml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def _measurements(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, fingerprint, resolution FROM measurements").fetchall()


def _samples(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT m.fingerprint, m.resolution, m.status, s.round, s.latency_ms,"
                          " s.drift FROM samples s JOIN measurements m ON m.id ="
                          " s.measurement_id ORDER BY m.resolution, s.rowid").fetchall()


def test_merging_a_device_store_is_idempotent_and_catches_up_open_ones(tmp_path, tiny,
                                                                      curve_device):
    fast = Protocol(min_rounds=2, max_rounds=3, runs_per_visit=2)
    host, main_store = Store(tmp_path / "host.sqlite"), Store(tmp_path / "main.sqlite")
    points = [(tiny, 64), (tiny, 96)]
    dev = curve_device(noise=0.01, fail_after=3)
    with pytest.raises(KeyboardInterrupt):      # interrupted: one point still open
        measure_points(dev, points, host, fast)
    key = dev.info().context_key
    fps = [(tiny.fingerprint, r) for _, r in points]
    assert import_measurements(main_store, export_measurements(host, key, fps)) == 2
    first = _samples(tmp_path / "main.sqlite")
    assert {row[2] for row in first} == {"open"} and len(first) == 6
    ms = measure_points(curve_device(noise=0.01), points, host, fast)   # resumed on the host
    dump = export_measurements(host, key, fps)
    assert import_measurements(main_store, dump) == 2
    assert import_measurements(main_store, dump) == 0            # the same dump again: nothing
    assert _samples(tmp_path / "main.sqlite") == _samples(tmp_path / "host.sqlite")
    again = measure_points(curve_device(), points, main_store, fast)    # finished: reused
    assert [m.latency_ms for m in again] == [m.latency_ms for m in ms]


def test_a_device_that_needs_a_gpu_is_refused_before_anything_runs(tmp_path, tiny, ray_cluster,
                                                                   capsys):
    plan = _plan(tmp_path, tiny, CPU2 + '[devices.gpu]\ndriver = "cuda"\n')
    assert main(["sweep-plan", plan, "--executor", "ray", "--store",
                 str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "no node of the Ray cluster can run device gpu (cuda): each needs CPU 1, GPU 1" in err
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_one_owner_per_device_label(tmp_path, ray_cluster):
    from latency_lab.scaleout.device_actor import DeviceSpec, close_device_actor, open_device_actor
    from latency_lab.scaleout.executors import ExecutorError
    from latency_lab.scaleout.ray_executor import NAMESPACE

    spec = DeviceSpec("twice", "conftest:CurveDevice")
    actor = open_device_actor(ray_cluster, spec, str(tmp_path))
    try:
        assert ray_cluster.get(actor.where.remote())["device"]["name"] == "curve"
        with pytest.raises(ExecutorError, match="device twice is in use by another run"):
            open_device_actor(ray_cluster, spec, str(tmp_path))
    finally:
        close_device_actor(ray_cluster, actor)
    deadline = time.monotonic() + 20         # the name is free again (ray.kill is async)
    while time.monotonic() < deadline:
        try:
            ray_cluster.get_actor("device:twice", namespace=NAMESPACE)
        except ValueError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the device's actor name was not released")


@pytest.mark.slow
def test_plan_on_ray_device_actors_merge_into_the_store_and_resume(tmp_path, tiny, ray_cluster,
                                                                   converted, capsys):
    """Two real cpu devices as actors (real LiteRT), one that cannot open: the two sweeps
    land in their hosts' stores and are merged into --store; the broken one fails alone; a
    rerun measures nothing again."""
    plan = _plan(tmp_path, tiny, converted + '[devices.broken]\ndriver = "cpu"\n'
                                        'options = { threads = 0 }\n')
    store = tmp_path / "main.sqlite"
    args = ["sweep-plan", plan, "--executor", "ray", "--store", str(store), "--no-jumps"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 of 3 sweeps failed (first: tiny on broken: cannot open device broken: " in err
    assert "threads must be at least 1" in err
    assert err.count("3 measurement(s) merged from the device's store") == 2
    for label in ("cpu0", "cpu1"):
        csv = (tmp_path / "sweeps" / label / "tiny.csv").read_text().splitlines()
        assert csv[0].startswith("resolution,latency_ms,") and len(csv) == 4
    hosts = [_samples(tmp_path / "hosts" / f"{d}.sqlite") for d in ("cpu0", "cpu1")]
    merged = _samples(store)
    assert sorted(merged) == sorted(hosts[0] + hosts[1]) and len(merged) >= 2 * 3 * 2 * 2
    assert {row[2] for row in merged} == {"done"}
    assert main(args) == 2                          # again: everything is reused
    err = capsys.readouterr().err
    assert "merged" not in err and err.count("done tiny on cpu") == 2
    assert _samples(store) == merged


@pytest.mark.slow
def test_plan_with_local_processes_writes_the_shared_store(tmp_path, tiny, converted, capsys):
    """local:2: each device owned by one worker process, both writing --store directly."""
    plan = _plan(tmp_path, tiny, converted)
    store = tmp_path / "main.sqlite"
    assert main(["sweep-plan", plan, "--executor", "local:2", "--store", str(store),
                 "--no-jumps"]) == 0
    err = capsys.readouterr().err
    assert err.count("done tiny on cpu") == 2 and "merged" not in err
    assert not (tmp_path / "hosts").exists()
    with sqlite3.connect(store) as db:
        per_context = db.execute("SELECT context_key, COUNT(*), SUM(status = 'done') FROM"
                                 " measurements GROUP BY context_key").fetchall()
    assert len(per_context) == 2 and all(n == done == 3 for _, n, done in per_context)
    for label in ("cpu0", "cpu1"):
        assert len((tmp_path / "sweeps" / label / "tiny.csv").read_text().splitlines()) == 4


@pytest.mark.slow
def test_a_searchs_live_device_on_ray_is_an_actor_merged_into_the_store(tmp_path, tiny,
                                                                        ray_cluster, model_dir,
                                                                        converted):
    """`search --executor ray --latency cpu`: the device is opened by its actor; what it
    measures lands in the search's store, described as the local device is (so a search's
    state resumes under either executor)."""
    from latency_lab.search.sources import DeviceLatency, parse_latency_source
    from latency_lab.scaleout.executors import open_executor, parse_executor

    # every point the same 3 rounds, so the reused point and its reference overlap in time
    fast = Protocol(min_rounds=3, max_rounds=3, runs_per_visit=2, warmup_first_visit=1)
    opts = {"threads": 1, "model_dir": model_dir}
    store = tmp_path / "main.sqlite"
    with open_executor(parse_executor("ray")) as ex:
        source = parse_latency_source("cpu", store, fast, opts, executor=ex)
        try:
            assert type(source).__name__ == "ActorLatency" and source.host
            values = source.latency_many([(tiny, 64), (tiny, 96)])
            described = source.describe()
        finally:
            source.close()
        from latency_lab.search.sources import actor_latency

        assert actor_latency(ray_cluster, "table:any.csv") is None   # a replay stays here
    assert all(v > 0 for v in values) and values[1] > values[0]
    n = len(_measurements(store))
    with DeviceLatency("cpu", store, fast, opts) as local:
        assert local.describe() == described
        again = local.latency_many([(tiny, 64), (tiny, 96)])
        assert len(_measurements(store)) == n + 1            # the reference alone
        # the actor's measurements are in the store: 96 px is reused, tied to this run's scale
        # by the reference measured with it (issue 23); the reference (64 px, the first point)
        # is measured again, as every new run's first batch measures its reference
        assert [local.provenance(tiny, r)["provenance"] for r in (64, 96)] == ["live", "reused"]
        assert again[1] > again[0] > 0
        # on this run's scale by its tie: the actor's value times the reference's factor
        assert again[1] == pytest.approx(values[1] * again[0] / values[0], rel=1e-9)
    assert len(_samples(store)) >= 2 * 2 * 2
