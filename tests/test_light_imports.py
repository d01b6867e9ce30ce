"""What the everyday commands import: each heavy library only where a command needs it
(issue 26: `import latency_lab.measure.protocol` pulled scipy.stats, 0.66 s; pandas and pyplot
0.2 s each in a search against recorded files). Run in fresh interpreters, as a command starts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loaded(code: str) -> set[str]:
    probe = (f"{code}\nimport sys, json\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_the_protocol_imports_no_scipy_pandas_or_matplotlib():
    loaded = _loaded("import latency_lab.measure.protocol")
    assert not loaded & {"scipy", "pandas", "matplotlib", "torch", "tensorflow"}


def test_help_imports_no_numpy():
    loaded = _loaded("from latency_lab.cli.app import app")
    assert not loaded & {"numpy", "scipy", "pandas", "matplotlib", "torch"}


@pytest.mark.slow
def test_the_offline_search_imports_no_scipy_pandas_or_pyplot(tmp_path):
    """The front page's search against a recorded table and LUT, in one fresh process."""
    table = ROOT / "results" / "cpu" / "latency-table-b0-search.csv"
    lut = ROOT / "results" / "cpu" / "lut-efficientnet-b0-to-b2.json"
    code = (f"import os; os.chdir({str(tmp_path)!r})\n"
            "from latency_lab.cli.app import main\n"
            f"assert main(['search', '--budget-ms', '20', '--resolutions', '224:288:16', "
            f"'--accuracy', 'synthetic', '--latency', 'table:{table}', "
            f"'--latency', 'lut:{lut}', '--out', 'o']) == 0\n"
            "import sys; assert 'matplotlib.pyplot' not in sys.modules")
    loaded = _loaded(code)
    assert "matplotlib" in loaded           # paths.png is drawn
    assert not loaded & {"scipy", "pandas", "torch", "tensorflow"}
    # what was saved only at the end (instant latencies and values) is all in state.json:
    # the same command again reads and evaluates nothing
    rerun = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr
    assert "0 latency reads, 0 evaluations" in rerun.stderr + rerun.stdout
    assert json.loads((tmp_path / "o" / "state.json").read_text())["values"]
