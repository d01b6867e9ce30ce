"""The house keeps its shape: every import runs down the pipeline and no modules import each
other in a circle (function-level imports included: a circle closed inside a function is
still a circle). Read from the code with `ast`; nothing is imported."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# top-level folders as pyproject's package-dir installs them
FOLDERS = {"latency_lab": "latency_lab", "devices": "latency_lab.devices",
           "search": "latency_lab.search", "android_bench": "latency_lab.android_bench"}
# top of the pipeline first: a package may import only packages after it
LAYERS = ["cli", "search", "scaleout", "sweeps", "devices", "tables", "training", "measure",
          "models", "network", "ground"]
# the one arrow up: the driver registry reads the list of built-in drivers by name (strings;
# a driver module is imported only when named)
ALLOWED_UP = {("latency_lab.measure.api", "latency_lab.devices")}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, dotted in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            found[".".join((dotted, *rel))] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:      # latency_lab/__init__.py: a docstring
        return "ground"
    if parts[1] in ("devices", "search", "android_bench"):
        return parts[1]
    return "ground" if len(parts) == 2 else parts[1]


def test_no_module_imports_another_in_a_circle():
    graph = _graph()
    assert len(graph) > 60
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None


def test_every_import_runs_down_the_pipeline():
    up = []
    for a, targets in _graph().items():
        for b in targets:
            la, lb = _layer(a), _layer(b)
            if la in LAYERS and lb in LAYERS and LAYERS.index(la) > LAYERS.index(lb) \
                    and (a, b) not in ALLOWED_UP:
                up.append(f"{a} ({la}) -> {b} ({lb})")
    assert up == []


def test_the_layout_knows_every_package():
    assert {_layer(m) for m in _graph()} - {"android_bench"} == set(LAYERS)
