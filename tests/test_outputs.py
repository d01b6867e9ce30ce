"""One output convention: --out everywhere, a default in the working directory, readable modes."""

import os
import stat
from pathlib import Path

import pytest

from latency_lab.cli.app import main
from search_helpers import nonlinear_module

SWEEP = Path(__file__).resolve().parents[1] / "results" / "cpu" / "efficientnet-b0_sweep_c.csv"


@pytest.mark.slow
def test_defaults_land_in_the_working_directory_readable_by_others(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert main(["jumps", str(SWEEP), "--no-plot"]) == 0
        report = tmp_path / "efficientnet-b0_sweep_c_jumps"
        assert (report / "jumps.csv").is_file()
        mod = nonlinear_module(tmp_path)
        assert main(["scale", "--method", "fast", "--budget-ms", "400", "--latency",
                     f"py:{mod}:latency_ms"]) == 0
        assert (tmp_path / "scale-fast.json").is_file()
        for f in (report / "jumps.csv", tmp_path / "scale-fast.json"):
            mode = stat.S_IMODE(f.stat().st_mode)
            assert mode == 0o644, oct(mode)
    finally:
        os.umask(old)
    capsys.readouterr()
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("latency-lab ")


def test_android_without_adbutils_is_one_line(monkeypatch, capsys, tmp_path):
    import builtins

    real = builtins.__import__

    def no_adbutils(name, *a, **kw):
        if name == "adbutils":
            raise ModuleNotFoundError("No module named 'adbutils'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_adbutils)
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    code = main(["sweep", "--device", "pixel2", "-O", f"binary={binary}",
                 "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'latency-lab[android]'" in err
    assert len(err.strip().splitlines()) == 1
