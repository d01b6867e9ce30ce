"""Which optional extra a feature needs, and one line naming it when it is not installed.

`pip install -e .` is the core (LiteRT, numpy, scipy, pandas, ruptures, matplotlib, Pillow);
torch, TensorFlow, onnx, adbutils, Ray and TensorRT come with the extras of pyproject.toml.
A feature that needs one checks it before any work starts (`require`, with
`importlib.util.find_spec`: nothing is imported), so a missing extra is an `error: ...` line and
exit 2, not a `ModuleNotFoundError` traceback (issue 26: `network export --format torch` in the
environment the front page's first command creates). `missing_extra_error` turns a
`ModuleNotFoundError` met anyway into the same line (the CLI's last resort).
"""

from __future__ import annotations

import importlib.util

from latency_lab.errors import UserError

# extra -> the top-level modules it installs (what is looked for)
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnx": ("onnx", "onnxruntime"),
    "keras": ("tensorflow", "keras"),
    "android": ("adbutils",),
    "ray": ("ray",),
    "tensorrt": ("tensorrt", "pycuda"),
    "bench": ("tabulate",),
}
MODULE_EXTRA = {m: extra for extra, mods in EXTRAS.items() for m in mods}


class MissingExtraError(UserError):
    """A feature needs an optional extra that is not installed."""


def install_hint(extras: str) -> str:
    return f'pip install -e ".[{extras}]"'


def missing(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here."""
    out = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):   # a broken or half-removed installation
            found = False
        if not found:
            out.append(module)
    return out


def require(feature: str, *extras: str) -> None:
    """Refuse `feature` in one line unless every one of `extras` is installed."""
    lacking = [e for e in extras if missing(e)]
    if lacking:
        mods = sorted({m for e in lacking for m in missing(e)})
        names = ",".join(lacking)
        raise MissingExtraError(f"{feature} needs the {names} extra ({', '.join(mods)} not "
                                f"installed): {install_hint(names)}")


def missing_extra_error(exc: ModuleNotFoundError) -> MissingExtraError | None:
    """The one-line error for a module of an extra that was imported without being there."""
    top = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRA.get(top)
    if extra is None:
        return None
    return MissingExtraError(f"this needs the {extra} extra ({top} is not installed): "
                             f"{install_hint(extra)}")
