"""Which builder makes a device's model, and how files are cached."""

from __future__ import annotations

import pytest

from latency_lab.models.build_tflite import EMITTERS, op_list
from latency_lab.cli.app import main
from latency_lab.models.files import tflite_path

def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cpu_device_emits_by_default_and_says_so(tiny):
    from latency_lab.devices.cpu import CpuDevice
    from latency_lab.errors import UserError

    direct, keras = CpuDevice(), CpuDevice(builder="keras")
    assert direct.info().extra["builder"] == "direct" and "builder" not in keras.info().extra
    assert direct.info().context_key != keras.info().context_key
    run_ = direct.sample(tiny, 64, runs=3)
    assert len(run_.samples_ms) == 3 and direct.builds == 1 and 0 < direct.build_s < 5
    direct.sample(tiny, 80, runs=1)
    assert direct.builds == 1          # one model per network, resized per resolution
    with pytest.raises(UserError, match="unknown builder 'tf'"):
        CpuDevice(builder="tf")


def test_sweep_refuses_an_unknown_builder_in_one_line(capsys):
    code, _, err = run(capsys, "sweep", "-O", "builder=tf")
    assert code == 2 and "unknown builder 'tf'" in err and err.count("\n") == 1


@pytest.mark.slow
def test_direct_and_converted_files_are_cached_apart(tiny, tmp_path):
    direct = tflite_path(tiny, tmp_path)
    converted = tflite_path(tiny, tmp_path, "keras")
    assert direct.name == f"{tiny.fingerprint}.direct-v1.tflite"
    assert converted.name == f"{tiny.fingerprint}.tflite"
    assert op_list(direct.read_bytes()) == op_list(converted.read_bytes())
    assert direct.read_bytes() != converted.read_bytes()
    mtime = direct.stat().st_mtime_ns
    assert tflite_path(tiny, tmp_path).stat().st_mtime_ns == mtime   # cached


@pytest.mark.slow
def test_a_spec_the_emitter_cannot_express_falls_back_with_one_warning(tiny, tmp_path,
                                                                        monkeypatch, capsys):
    from latency_lab.models import files as model_files

    monkeypatch.delitem(EMITTERS, "se")          # as if SE were a layer it did not know
    monkeypatch.setattr(model_files, "_warned", set())
    path = tflite_path(tiny, tmp_path)
    err = capsys.readouterr().err
    assert path.name == f"{tiny.fingerprint}.tflite"      # the converter's file
    assert err.count("\n") == 1 and err.startswith("warning:") and "'se'" in err
    assert tflite_path(tiny, tmp_path) == path and capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_live_search_reports_its_model_building_share(tmp_path, monkeypatch, capsys, tiny):
    from latency_lab.search.sources import parse_latency_source
    from search_helpers import write_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    mod = write_module(tmp_path, "def accuracy(net):\n    return 60 + sum(s['width'] for s in "
                                 "net['stages']) / 10 + sum(s['depth'] for s in net['stages'])\n")
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    with parse_latency_source("cpu") as src:       # the baseline, in the store the search reads
        budget = 3 * src.latency_ms(tiny, 64)   # room for steps even when the load moves it 2x
    code, out, err = run(capsys, "search", "--network", "tiny.json", "--budget-ms",
                         f"{budget:.4f}", "--latency", "cpu", "--accuracy", f"py:{mod}:accuracy",
                         "--resolutions", "64", "--stages", "0,1", "--candidates", "2",
                         "--out", "out")
    assert code == 0, err
    note = out.split("models built: ")[1]
    n_models = int(note.split()[0])
    assert n_models >= 2 and "(direct builder)" in note
