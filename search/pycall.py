"""`py:` sources and evaluators: the user's own Python function, loaded alone, called safely.

`py:MODULE:FUNCTION[,timeout=SECONDS]` runs the user's code (it is as trusted as the command
line that names it). MODULE is

- a file, `path/to/file.py`, or
- a dotted name: `MODULE.py` (or the package `MODULE/`) in the current directory if there is
  one, else a module installed in the environment.

A module from a file or the current directory is imported under a private package name
(`latency_lab_user_<hash of its directory>.MODULE`) whose search path is that directory alone,
so nothing in the directory can shadow another import: with the current directory first on
`sys.path` (what the earlier loader did), a `./matplotlib/` folder was imported when the search
drew its plot. Relative imports inside a user package work; the directory is appended at the
*end* of `sys.path`, so the module's own plain imports of its neighbours work too, and only a
name found nowhere else can come from there.

A module that fails to import (syntax error, an exception, `sys.exit(...)`) and a function that
raises or calls `sys.exit("message")` are one-line `SourceError`s that keep the user's message.
The function runs in a worker process of its own (`search/pyworker.py`: `PyFunction`), which
uses what is here to load and call it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import sys
import types
from pathlib import Path
from typing import Any

from latency_lab.errors import UserError


class SourceError(UserError):
    """A latency source or evaluator that cannot be loaded or gave an unusable answer (defined
    here, at the bottom of search/, where py: code is loaded; sources.py re-exports it)."""


Where = tuple[str, str]   # (directory or "", module name): how to find the module again


def parse_target(text: str) -> tuple[str, str, float | None]:
    """'MODULE:FUNCTION[,timeout=S]' -> (module, function, timeout seconds or None)."""
    target, _, options = text.partition(",")
    module_name, sep, func_name = target.rpartition(":")
    if not sep or not module_name or not func_name:
        raise SourceError(f"py: source {text!r}: expected py:MODULE:FUNCTION[,timeout=SECONDS]")
    timeout = None
    for item in filter(None, (o.strip() for o in options.split(","))):
        key, eq, value = item.partition("=")
        if key.strip() != "timeout" or not eq:
            raise SourceError(f"py: option {item!r} unknown; the one option is timeout=SECONDS")
        try:
            timeout = float(value)
        except ValueError:
            raise SourceError(f"py: timeout={value!r} is not a number of seconds") from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise SourceError(f"py: timeout={value} must be a positive number of seconds")
    return module_name, func_name, timeout


def locate(module_name: str) -> Where:
    """Where MODULE is: a .py file or the current directory (directory, name), or installed
    ("", name)."""
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        file = Path(module_name).expanduser()
        if not file.is_file():
            raise SourceError(f"py: no such Python file {file}")
        return str(file.resolve().parent), file.stem
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise SourceError(f"py: {module_name!r} is not a module name or a .py file")
    here = Path.cwd()
    top = module_name.split(".")[0]
    if (here / f"{top}.py").is_file() or (here / top).is_dir():
        return str(here), module_name
    return "", module_name


def _private_package(directory: str) -> str:
    """A package named after `directory` whose only search path is `directory`."""
    name = "latency_lab_user_" + hashlib.sha256(directory.encode()).hexdigest()[:12]
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [directory]
        sys.modules[name] = package
    if directory not in sys.path:
        sys.path.append(directory)   # last: the user's modules never shadow another import
    return name


def load(where: Where, func_name: str, label: str):
    """Import the module (see the module docstring) and return FUNCTION."""
    directory, module_name = where
    full = f"{_private_package(directory)}.{module_name}" if directory else module_name
    origin = f" from {directory}" if directory else ""
    try:
        module = importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == full or full.startswith(exc.name + ".")):
            raise SourceError(f"{label}: no module {module_name!r} in the current directory "
                              f"or the environment") from None
        raise SourceError(f"{label}: importing {module_name}{origin} failed: {exc}") from None
    except SystemExit as exc:
        raise SourceError(f"{label}: importing {module_name}{origin} called "
                          f"sys.exit({exc.code!r})") from None
    except Exception as exc:   # the user's module: SyntaxError, anything it raises
        raise SourceError(f"{label}: importing {module_name}{origin} raised "
                          f"{type(exc).__name__}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise SourceError(f"{label}: module {module_name!r} has no function {func_name!r}")
    return func


def call(func, arg: Any, label: str, about: str) -> Any:
    """`func(arg)`, with what the user's code raised (or passed to sys.exit) as one line."""
    try:
        return func(arg)
    except SystemExit as exc:
        raise SourceError(f"{label} called sys.exit({exc.code!r}) for {about}") from None
    except Exception as exc:
        raise SourceError(f"{label} raised {type(exc).__name__}: {exc} for {about}") from exc


def synthetic_mark(func) -> str:
    """A function with a truthy `synthetic` attribute makes its values up: its text (or
    "synthetic") is said wherever its values are shown."""
    mark = getattr(func, "synthetic", "")
    return (mark if isinstance(mark, str) else "synthetic") if mark else ""
