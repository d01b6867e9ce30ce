"""Names that become file names stay in their folder (fileio.safe_name), and a sweep plan is
checked whole before its first sweep: drivers, options, its output folder, its protocol and
the types of its fields (issue 25)."""

from __future__ import annotations

import json
import math

import pytest

from latency_lab.cli.app import main
from latency_lab.measure.settings import Protocol
from latency_lab.scaleout.sweep_plan import PlanError, load_plan, plan_jobs

DEVICE = '\n[devices.c0]\ndriver = "conftest:CurveDevice"\n'
FAST = '\n[protocol]\nmin_rounds = 2\nmax_rounds = 2\nruns_per_visit = 2\n'


def _write(tmp_path, tiny, names=("tiny",), resolutions='["64:96:8"]', extra="", device=DEVICE,
           protocol=FAST) -> str:
    files = []
    for i, name in enumerate(names):
        (tmp_path / f"n{i}.json").write_text(json.dumps({**tiny.to_dict(), "name": name}))
        files.append(f"n{i}.json")
    (tmp_path / "plan.toml").write_text(f"networks = {json.dumps(files)}\nresolutions = "
                                        f"{resolutions}\nout = \"sweeps\"\n{extra}\n{protocol}"
                                        f"{device}")
    return str(tmp_path / "plan.toml")


def test_network_and_device_names_stay_one_file_in_their_folder(tmp_path, tiny):
    plan = load_plan(_write(tmp_path, tiny, ("../../x", "a/b/net", ".."),
                            device='\n[devices."../../up"]\ndriver = "cpu"\n'))
    out = tmp_path / "sweeps"
    paths = [j.csv_path(out) for j in plan_jobs(plan)]
    assert [p.relative_to(out).parts for p in paths] == [
        ("__.._up", "__.._x.csv"), ("__.._up", "a_b_net.csv"), ("__.._up", "_.csv")]


@pytest.mark.slow   # runs a plan's sweeps (the test device: formula latencies)
def test_a_plan_of_odd_names_writes_only_inside_its_folder(tmp_path, tiny, capsys):
    plan = _write(tmp_path, tiny, ("../../x", "a/b/net"))
    before = set(tmp_path.rglob("*"))
    assert main(["sweep-plan", plan, "--store", str(tmp_path / "s.sqlite"), "--no-jumps"]) == 0
    made = {p.relative_to(tmp_path).as_posix() for p in set(tmp_path.rglob("*")) - before}
    assert made == {"sweeps", "sweeps/c0", "sweeps/c0/__.._x.csv", "sweeps/c0/a_b_net.csv",
                    "s.sqlite"}, made
    capsys.readouterr()


def test_names_that_become_one_file_name_are_refused(tmp_path, tiny):
    with pytest.raises(PlanError, match="'a/b/net' and 'a_b_net', which are one file name"):
        load_plan(_write(tmp_path, tiny, ("a/b/net", "a_b_net")))


def test_the_lut_default_file_name_is_sanitised(tmp_path, tiny, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd.json").write_text(json.dumps({**tiny.to_dict(), "name": "../../x"}))
    assert main(["lut", "record", "--device", "conftest:CurveDevice", "--network", "odd.json",
                 "--resolutions", "64", "--max-rounds", "2", "--calibration", "1",
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lut-__.._x-conftest.json", "odd.json",
                                                          "s.sqlite"]
    assert "LUT space: up to" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (dict(device='\n[devices.x]\ndriver = "nope"\n'), "devices.x: unknown device 'nope'"),
    (dict(device=DEVICE + "options = { nonsense = 1 }\n"), "has no option 'nonsense'"),
    (dict(device='\n[devices.c]\ndriver = "cpu"\noptions = { threads = "two" }\n'),
     "option threads='two': expected an integer"),
    (dict(device='\n[devices.c]\ndriver = "no_module_xyz:Dev"\n'), "cannot load device driver"),
])
def test_drivers_and_options_are_checked_before_the_first_sweep(tmp_path, tiny, capsys, change,
                                                                 message):
    plan = _write(tmp_path, tiny, **change)
    assert main(["sweep-plan", plan, "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "sweeps").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_first(tmp_path, tiny, capsys):
    (tmp_path / "afile").write_text("x")
    plan = _write(tmp_path, tiny)
    assert main(["sweep-plan", plan, "--out", str(tmp_path / "afile" / "x"), "--store",
                 str(tmp_path / "s.sqlite")]) == 2
    assert "afile is a file, not a directory" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("change, message", [
    (dict(resolutions="true"), "resolutions must be ranges"),
    (dict(resolutions='[64, {a = 1}]'), "resolutions must be ranges"),
    (dict(extra="x = " + "[" * 50_000 + "]" * 50_000), "nested too deeply|not valid TOML"),
    (dict(protocol=FAST + "time_cap_s = nan\n"), "protocol: --time-cap-s must be a finite"),
    (dict(protocol="\n[protocol]\nmin_rounds = -1\n"), "protocol: protocol needs"),
    (dict(extra="host_store_dir = 5"), "host_store_dir must be a path as text"),
])
def test_plan_fields_of_the_wrong_kind_are_one_line(tmp_path, tiny, change, message):
    with pytest.raises(PlanError, match=message):
        load_plan(_write(tmp_path, tiny, **change))


def test_a_bare_resolution_and_no_time_cap_are_accepted(tmp_path, tiny):
    plan = load_plan(_write(tmp_path, tiny, resolutions="64",
                            protocol=FAST + "time_cap_s = inf\n"))
    assert plan.resolutions == (64,) and math.isinf(plan.protocol.time_cap_s)
    assert plan.protocol.to_dict()["time_cap_s"] is None      # JSON-safe for the store
    json.dumps(plan.protocol.to_dict(), allow_nan=False)
    assert Protocol().to_dict()["time_cap_s"] == 900.0
