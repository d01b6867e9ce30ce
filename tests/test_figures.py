"""latency_lab.figures: matplotlib imported without the `set()` docstrings, kwdoc put back."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import sys
from latency_lab.figures import figure_class
Figure, Canvas = figure_class()
import matplotlib.artist as artist, matplotlib.lines as lines
assert artist.kwdoc.__name__ == "kwdoc" and "antialiased" in artist.kwdoc(lines.Line2D)
assert "antialiased" not in (lines.Line2D.set.__doc__ or "")     # skipped at import
fig = Figure(figsize=(2, 2), dpi=50)
Canvas(fig)
fig.subplots().plot([0, 1], [1, 0], lw=2)
fig.savefig(sys.argv[1], format="png")
again = figure_class()
assert again == (Figure, Canvas)
"""


@pytest.mark.slow
def test_figures_render_and_kwdoc_is_put_back(tmp_path):
    out = tmp_path / "f.png"
    p = subprocess.run([sys.executable, "-c", CODE, str(out)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
