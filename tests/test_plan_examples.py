"""The example plans shipped in examples/: the cpu one runs here as it is written; every
device of a plan is checked before any sweep starts (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latency_lab.cli.app import main
from latency_lab.scaleout.sweep_plan import PlanError, check_devices, load_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_the_examples_load_and_name_their_devices():
    cpu = load_plan(EXAMPLES / "plan-cpu.toml")
    assert [d.driver for d in cpu.devices] == ["cpu"] and len(cpu.networks) == 2
    phone = load_plan(EXAMPLES / "plan-phone.toml")
    assert {d.driver for d in phone.devices} == {"pixel2", "cpu"}
    # on Ray a device opens on its own host: driver and options are checked here
    assert len(check_devices(phone, open_here=False)) == 2


def test_the_cpu_example_opens_its_device_here():
    lines = check_devices(load_plan(EXAMPLES / "plan-cpu.toml"), open_here=True)
    assert lines and lines[0].startswith("cpu1: cpu on ")


def test_a_phone_that_is_not_there_stops_the_plan_before_any_sweep(tmp_path, capsys):
    plan = tmp_path / "phone.toml"
    plan.write_text((EXAMPLES / "plan-phone.toml").read_text())
    assert main(["sweep-plan", str(plan), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "devices.pixel2" in err[0]
    assert not (tmp_path / "phone-sweeps").exists() and not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("device, message", [
    ('driver = "nope"', "unknown device 'nope'"),
    ('driver = "cpu"\noptions = { thread = 1 }', "thread"),
    ('driver = "cpu"\noptions = { threads = "many" }', "threads"),
])
def test_a_bad_device_is_refused_by_name(tmp_path, device, message):
    plan = tmp_path / "p.toml"
    plan.write_text(f'networks = ["mbconv-tiny"]\nresolutions = ["64,80"]\n[devices.d1]\n{device}\n')
    with pytest.raises(PlanError, match=f"devices.d1: .*{message}"):
        check_devices(load_plan(plan), open_here=True)


@pytest.mark.slow
def test_the_cpu_example_runs_here(tmp_path, capsys):
    """examples/plan-cpu.toml as shipped, with its time cap cut to seconds for the test."""
    text = (EXAMPLES / "plan-cpu.toml").read_text()
    assert "time_cap_s = 90" in text
    plan = tmp_path / "plan-cpu.toml"
    plan.write_text(text.replace("time_cap_s = 90", "time_cap_s = 6"))
    assert main(["sweep-plan", str(plan), "--store", str(tmp_path / "s.sqlite"),
                 "--no-jumps"]) == 0
    out = tmp_path / "plan-cpu_sweeps" / "cpu1"
    assert sorted(p.name for p in out.glob("*.csv")) == ["efficientnet-b0.csv", "mbconv-tiny.csv"]
