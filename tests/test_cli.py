"""The command line: exit codes, one-line errors, fast start-up without heavy imports."""

import json
import subprocess
import sys

import pytest

from latency_lab.cli.app import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_and_network_show_do_not_import_heavy_libraries():
    code = ("import sys; from latency_lab.cli.app import main; main(['--help']);"
            "main(['network', 'show', 'efficientnet-b0']);"
            "heavy = [m for m in ('tensorflow', 'torch', 'pandas', 'ai_edge_litert', 'ray',"
            " 'concurrent.futures.process') if m in sys.modules];"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_network_show_json(capsys):
    code, out, _ = run(capsys, "network", "show", "efficientnet-b0", "--json")
    d = json.loads(out)
    assert code == 0 and d["params"] == 5_288_548 and d["stages"][0]["width"] == 16


def test_network_show_reads_a_json_file(capsys, tmp_path, tiny):
    p = tmp_path / "net.json"
    p.write_text(tiny.to_json())
    code, out, _ = run(capsys, "network", "show", str(p))
    assert code == 0 and tiny.fingerprint in out


@pytest.mark.parametrize("args, message", [
    (["sweep", "--device", "nope"], "unknown device 'nope'"),
    (["sweep", "--network", "resnet9000"], "unknown network"),
    (["sweep", "--resolutions", "400:160:4"], "start <= stop"),
    (["sweep", "--resolutions", "a:b"], "malformed resolutions"),
    (["sweep", "--resolutions", "16,32"], "resolution 16 outside 32..2048"),
    (["sweep", "--resolutions", "224,4096"], "outside 32..2048"),
    (["network", "show", "missing.json"], "cannot read network file"),
    (["sweep", "--min-rounds", "0"], "protocol needs"),
    # driver options: one conversion, one set of names, no "multiple values" traceback
    (["sweep", "--threads", "2", "-O", "threads=3"], "give --threads or -O threads=..., not both"),
    (["sweep", "-O", "threads=2", "-O", "threads=3"], "device option 'threads' given twice"),
    (["sweep", "-O", "serial=x"], "device 'cpu' has no option 'serial'; its options: affinity,"),
    (["sweep", "--serial", "x"], "device 'cpu' has no option 'serial'"),
    (["sweep", "-O", "threads=many"], "device 'cpu' option threads='many': expected an integer"),
    (["sweep", "--device", "json:JSONDecoder"], "'json:JSONDecoder' is not a device driver"),
    (["sweep", "--device", "table:x.csv", "-O", "path=y.csv"], "do not give path= as well"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_output_is_refused_before_measuring(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "x.csv").mkdir()
    code, _, err = run(capsys, "sweep", "--out", str(ro / "x.csv"))
    assert code == 2 and "is a directory" in err


def test_corrupt_store_is_refused(capsys, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 1000)
    code, _, err = run(capsys, "sweep", "--store", str(bad), "--resolutions", "64",
                       "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "cannot use store" in err


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "sweep", "--no-such-option")
    assert code == 2 and "No such option" in err


def test_devices_lists_cpu(capsys):
    code, out, _ = run(capsys, "devices")
    assert code == 0 and "cpu" in out.split()


def test_every_user_error_derives_from_user_error():
    """The CLI catches UserError alone: each module's error for bad input derives from it, so
    none of them can escape as a traceback, and an unknown scaling method is not a BudgetError."""
    import importlib
    import pkgutil

    import latency_lab
    import latency_lab.devices
    import latency_lab.search
    from latency_lab.errors import UserError
    from latency_lab.search.scaling import BudgetError, get_family

    # internal (never shown to a user as such): the phone's output parser's error, which the
    # android driver turns into a DeviceError
    internal = {"BenchmarkOutputError"}
    found = {}
    modules = [mod for pkg in (latency_lab, latency_lab.devices, latency_lab.search)
               for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    for mod in modules:
        if mod.name.endswith(("build_torch", "devices.cuda", "devices.tensorrt")):
            continue  # torch-only modules: their errors are checked where torch is present
        m = importlib.import_module(mod.name)
        for name, obj in vars(m).items():
            if (isinstance(obj, type) and issubclass(obj, Exception) and name.endswith("Error")
                    and obj.__module__ == m.__name__ and name not in internal):
                found[name] = obj
    assert {"SpecError", "DeviceError", "StoreError", "ProtocolError", "TableError",
            "SearchError"} <= set(found)
    assert [n for n, c in found.items() if not issubclass(c, UserError)] == []
    with pytest.raises(UserError, match="unknown scaling method") as err:
        get_family("quantum")
    assert not isinstance(err.value, BudgetError)


def _command_options() -> dict[str, dict[str, list[str]]]:
    """--flag -> {help text: [commands that take it with that help]}, from the built CLI."""
    import typer

    from latency_lab.cli.app import app

    seen: dict[str, dict[str, list[str]]] = {}

    def walk(cmd, path):
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])
        for p in getattr(cmd, "params", []):
            if getattr(p, "param_type_name", "") == "option" and path:
                seen.setdefault(p.opts[0], {}).setdefault(p.help, []).append(" ".join(path))

    walk(typer.main.get_command(app), [])
    return seen


def test_an_option_means_one_thing_in_every_command():
    """Every option two commands take is declared once (cli/options.py) and says the same in
    both; --device and --network come as the thing a command works on or as a filter of what
    it lists (two declarations); --out says what each command writes."""
    import typing

    from latency_lab.cli import options

    declared = {meta.help for value in vars(options).values()
                for meta in getattr(value, "__metadata__", ())}
    assert typing.get_origin(options.StorePath) is typing.Annotated
    shared = {flag: helps for flag, helps in _command_options().items()
              if sum(map(len, helps.values())) > 1 and flag != "--out"}
    assert {"--store", "--network", "--device", "--executor", "--ci-target-pct",
            "--budget-ms", "--latency", "--accuracy"} <= set(shared)
    for flag, helps in shared.items():
        assert len(helps) <= (2 if flag in ("--device", "--network") else 1), (flag, helps)
        assert set(helps) <= declared, f"{flag} is declared outside options.py"


def test_protocol_options_default_to_the_protocols_own_defaults():
    """sweep, search, compare and scale show Protocol's defaults, lut record the block
    protocol's: read from measure/settings.py, not repeated."""
    import inspect

    from latency_lab.cli.search import compare_command, scale_command, search_command
    from latency_lab.cli.sweep import sweep
    from latency_lab.cli.tables import lut_record
    from latency_lab.measure.protocol import Protocol
    from latency_lab.measure.settings import BLOCK_PROTOCOL

    names = {"ci_target_pct": "ci_target_pct", "min_rounds": "min_rounds",
             "max_rounds": "max_rounds", "runs_per_visit": "runs_per_visit",
             "time_cap_s": "time_cap_s", "batch_time_cap_s": "time_cap_s"}
    for command, proto in ((sweep, Protocol()), (search_command, Protocol()),
                           (compare_command, Protocol()), (scale_command, Protocol()),
                           (lut_record, BLOCK_PROTOCOL)):
        params = inspect.signature(command).parameters
        checked = [n for n in names if n in params]
        assert len(checked) >= 4, command.__name__
        for name in checked:
            assert params[name].default == getattr(proto, names[name]), (command, name)
    assert BLOCK_PROTOCOL != Protocol()


def test_progress_prints_plain_lines_off_a_terminal_and_advice_when_cis_are_wide():
    import io

    import pandas as pd
    from rich.console import Console

    from latency_lab.cli.options import Progress as _progress
    from latency_lab.cli.sweep import ci_advice
    from latency_lab.measure.protocol import RunStatus

    buf = io.StringIO()
    with _progress(Console(file=buf, width=200)) as bar:
        bar(RunStatus(0, 61, 0.0, 0, None, None, 1.0, None, 900.0))
        bar(RunStatus(3, 61, 125.0, 4, 2.5, 6.0, 1.0, 800.0, 900.0, met=3))
        bar(RunStatus(61, 61, 900.0, 9, None, None, 1.0, 0.0, 900.0, met=3))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "round 0, 0/61 points at the CI target, 0s elapsed"
    assert lines[1] == ("round 4, 3/61 points at the CI target, CI +-2.50% median, 6.00% widest "
                        "(target 1%), 2m05s elapsed, ~13m20s left (time cap)")
    # the cap stopped the other 58: stopped, not "done"
    assert lines[2].startswith("round 9, 3/61 points at the CI target, 58 stopped short of it")
    frame = pd.DataFrame({"ci_halfwidth_pct": [2.9, 3.1, 0.8],
                          "stop_reason": ["time_cap", "time_cap", "ci_target"]})
    advice = ci_advice(frame, 1.0, 900, 61)
    assert "missed at 2 of 3 points" in advice and "--affinity" in advice
    assert "--time-cap-s 1800" in advice and "run the same command again" in advice
    assert ci_advice(frame.iloc[2:], 1.0, 900, 61) == ""


def test_a_resumed_run_says_what_it_takes_and_counts_rounds_on():
    """A rerun of a capped sweep: what is resumed, once at the start, and the round counter
    going on from the store's rounds (issue 26: it started at 1 again, silently)."""
    import io

    from rich.console import Console

    from latency_lab.cli.options import Progress as _progress
    from latency_lab.measure.protocol import RunStatus

    buf = io.StringIO()
    with _progress(Console(file=buf, width=300)) as bar:
        bar(RunStatus(0, 61, 0.0, 0, 13.0, 26.0, 1.0, None, 900.0, reused=2, resumed=59,
                      prior_rounds=4, kept_samples=1888))
        bar(RunStatus(2, 61, 30.0, 1, 12.0, 20.0, 1.0, 600.0, 900.0, reused=2, resumed=59,
                      met=2, prior_rounds=4, kept_samples=1888))
    lines = buf.getvalue().splitlines()
    assert lines[0] == ("resuming from the store: 59 point(s) measured further (1888 samples "
                        "and up to 4 rounds kept); 2 finished point(s) reused as they were "
                        "(--remeasure measures all anew)")
    assert lines[1].startswith("round 4 (4 before this run), 0/61 points at the CI target")
    assert lines[2].startswith("round 5 (4 before this run), 2/61 points at the CI target")
    assert len(lines) == 3      # said once
