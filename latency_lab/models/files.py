"""The .tflite file of a network or block, by builder: emitted directly or converted.

Two builders make the float32 dynamic-shape model a device runs:

- `direct` (the default): `build_tflite.emit_tflite`, the flatbuffer written from the spec in
  tens of milliseconds, no TensorFlow;
- `keras`: spec -> Keras -> TFLite converter (`build_keras`), 2.0-7.5 s a preset on this quiet
  2-core machine (median 6.4 s; results/benchmarks/direct_tflite_build__quiet.md), kept as the
  reference route (`-O builder=keras`) and for trained weights.

The two files of one spec are different artefacts (same operators and shapes, other weight
values), so they are cached under different names: `{fingerprint}.tflite` for a converted
model (the name it always had), `{fingerprint}.direct-v{EMITTER_VERSION}.tflite` for an
emitted one. A spec the emitter cannot express falls back to the converter with one warning
line on stderr, never a wrong model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from latency_lab.errors import UserError
from latency_lab.fileio import write_atomic
from latency_lab.paths import cache_dir

BUILDERS = ("direct", "keras")
DEFAULT_BUILDER = "direct"
_warned: set[str] = set()


def check_builder(builder: str) -> str:
    if builder not in BUILDERS:
        raise UserError(f"unknown builder {builder!r}; known: {', '.join(BUILDERS)}")
    if builder == "keras":
        from latency_lab.extras import require

        require("the Keras builder (builder=keras)", "keras")
    return builder


def emit_or_none(spec, resolution: int | None = None) -> bytes | None:
    """The emitted model, or None (after one warning line per spec) when the emitter cannot
    express the spec."""
    from latency_lab.models.build_tflite import EmitterUnsupported, emit_tflite

    try:
        return emit_tflite(spec, resolution)
    except EmitterUnsupported as exc:
        from latency_lab.extras import require

        require(f"{spec.name}, which the direct TFLite emitter cannot express ({exc}),", "keras")
        if spec.fingerprint not in _warned:
            _warned.add(spec.fingerprint)
            print(f"warning: the direct TFLite emitter cannot express {spec.name} "
                  f"({spec.fingerprint}: {exc}); using the Keras converter", file=sys.stderr)
        return None


def tflite_bytes(spec, builder: str = DEFAULT_BUILDER, resolution: int | None = None) -> bytes:
    """The model's bytes, not cached (the direct route: milliseconds)."""
    if check_builder(builder) == "direct":
        data = emit_or_none(spec, resolution)
        if data is not None:
            return data
    from latency_lab.models.build_keras import convert_isolated

    return convert_isolated(spec, resolution)


def tflite_path(spec, root: Path | None = None, builder: str = DEFAULT_BUILDER) -> Path:
    """Path of the dynamic-shape model of `spec` (a NetworkSpec or BlockModel), building and
    caching it on first use under a name that says which builder made it."""
    from latency_lab.models import build_keras

    root = Path(root) if root else cache_dir() / "models"
    if check_builder(builder) == "direct":
        from latency_lab.models.build_tflite import EMITTER_VERSION

        path = root / f"{spec.fingerprint}.direct-v{EMITTER_VERSION}.tflite"
        if path.exists() and path.stat().st_size > 0:
            return path
        data = emit_or_none(spec)
        if data is not None:
            write_atomic(path, data)
            return path
    return build_keras.tflite_path(spec, root)
