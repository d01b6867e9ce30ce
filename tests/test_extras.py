"""A feature whose optional extra is not installed is one line naming the extra, exit 2, before
any work (issue 26: `network export --format torch` in the environment `pip install -e .`
makes was a ModuleNotFoundError traceback). The missing packages are made missing for real in a
fresh interpreter: an import hook that finds nothing for them, as an environment without them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latency_lab.extras import EXTRAS, MissingExtraError, missing, require

ROOT = Path(__file__).resolve().parents[1]

WITHOUT = '''
import sys
class Without:
    """Finds nothing for these top-level packages, as if they were not installed."""
    def __init__(self, names): self.names = set(names)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Without(%r))
from latency_lab.cli.app import main
sys.exit(main(%r))
'''


def run_without(packages: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT % (packages, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _one_line(p: subprocess.CompletedProcess, extra: str) -> str:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert f'pip install -e ".[{extra}]"' in lines[0]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, suffix", [("torch", "pt2"), ("onnx", "onnx")])
def test_export_without_torch_names_the_extra(tmp_path, fmt, suffix):
    p = run_without(["torch"], ["network", "export", "mbconv-tiny", "--format", fmt,
                                "--out", f"t.{suffix}"], tmp_path)
    line = _one_line(p, "torch")
    assert f"--format {fmt}" in line and not (tmp_path / f"t.{suffix}").exists()


@pytest.mark.slow
def test_zen_without_torch_names_the_extra_before_the_search(tmp_path):
    table = ROOT / "results" / "cpu" / "latency-table-b0-search.csv"
    p = run_without(["torch"], ["search", "--budget-ms", "20", "--resolutions", "224",
                                "--latency", f"table:{table}", "--accuracy", "zen-tuned",
                                "--out", "o"], tmp_path)
    assert "--accuracy zen-tuned" in _one_line(p, "torch")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_keras_builder_without_tensorflow_names_the_extra(tmp_path):
    p = run_without(["tensorflow", "keras"], ["network", "export", "mbconv-tiny", "--format",
                                              "keras", "--out", "t.keras"], tmp_path)
    _one_line(p, "keras")
    p = run_without(["tensorflow", "keras"], ["sweep", "--network", "mbconv-tiny",
                                              "--resolutions", "64,80", "-O", "builder=keras",
                                              "--out", "s.csv"], tmp_path)
    assert "builder=keras" in _one_line(p, "keras")


@pytest.mark.slow
def test_the_core_exports_tflite_without_torch_or_tensorflow(tmp_path):
    p = run_without(["torch", "tensorflow", "keras"],
                    ["network", "export", "mbconv-tiny", "--format", "tflite", "--out",
                     "t.tflite"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "t.tflite").stat().st_size > 100_000
    assert "untrained" in p.stdout      # what random weights mean for the outputs


def test_require_passes_for_what_is_installed_and_names_what_is_not(monkeypatch):
    require("a torch feature", "torch")      # the test environment has torch
    monkeypatch.setitem(EXTRAS, "nothing", ("no_such_module_xyz",))
    assert missing("nothing") == ["no_such_module_xyz"]
    with pytest.raises(MissingExtraError, match=r'feature X needs the nothing extra '
                                                r'\(no_such_module_xyz not installed\)'):
        require("feature X", "nothing")


@pytest.mark.slow
def test_a_dynamic_torch_export_of_a_stride_32_network_runs_at_several_sizes(tmp_path):
    """B0's stride is 32: torch.export refused H, W from 32 (a 1-pixel last feature map takes
    another path); from 33 they export, and the program runs at sizes across the range."""
    import torch

    from latency_lab.cli.app import main
    from latency_lab.network import presets

    d = presets.get("mbconv-tiny").to_dict()
    d["stages"][-1]["stride"] = d["stages"][-1]["blocks"][0]["stride"] = 2   # 16 -> 32, tiny
    (tmp_path / "n.json").write_text(json.dumps(d))
    assert main(["network", "export", str(tmp_path / "n.json"), "--format", "torch", "--out",
                 str(tmp_path / "n.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "n.pt2")).module()
    for size in (33, 64, 131):
        assert program(torch.rand(1, 3, size, size)).shape == (1, 10)
