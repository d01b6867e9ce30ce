"""Matplotlib's Figure and its Agg canvas, imported for files only and a fifth cheaper.

Both figure-writing commands a user runs most (`search` writing `paths.png`, `jumps` writing
`sweep.png`) pay matplotlib's import: 0.45 CPU-s of `from matplotlib.figure import Figure` here
(numpy included), a third of the offline search (issue 26's target: < 1.0 CPU-s for the whole
process). Of that, 0.08-0.09 s is matplotlib writing the docstring of every Artist subclass's
`set()` (`matplotlib.artist.kwdoc`, a table of every property, made by inspecting every
setter) as each class is defined; no file a command writes uses those docstrings. So the
import runs with `kwdoc` returning an empty text, and `kwdoc` is put back right after it, for
anyone who calls it (`help()`, Sphinx). Measured: 0.46 -> 0.37 CPU-s for the import, 3 runs
each at load 12. With a matplotlib that has no `kwdoc` (renamed), the import is the plain one.
"""

from __future__ import annotations

from typing import Any


def figure_class() -> tuple[Any, Any]:
    """(matplotlib.figure.Figure, FigureCanvasAgg), imported without `set()` docstrings."""
    import sys

    if "matplotlib.backends.backend_agg" not in sys.modules:
        import matplotlib.artist as artist

        kwdoc = getattr(artist, "kwdoc", None)
        if kwdoc is not None:
            artist.kwdoc = lambda _artist: ""
        try:
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401
        finally:
            if kwdoc is not None:
                artist.kwdoc = kwdoc
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


__all__ = ["figure_class"]
