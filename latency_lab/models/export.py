"""Write a network as a file a user deploys or benchmarks elsewhere (`latency-lab network export`).

| format | file | made by |
|---|---|---|
| tflite | float32 flatbuffer, input `image` [1, H, W, 3] | `builder` direct (the emitter) or keras (the converter) |
| onnx | ONNX (opset of the TensorRT driver), input `image` [1, 3, H, W] | torch, legacy exporter |
| keras | Keras 3 `.keras` archive | `build_keras` |
| torch | `torch.export` program (`.pt2`, `torch.export.load(...).module()`), input [1, 3, H, W] | `build_torch` |

H and W stay dynamic (32..2048) unless a resolution fixes them. (TorchScript is deprecated
in torch 2.13, hence `torch.export`.) Weights are seeded random initialisations (nothing here
trains). Every file is written whole or not at all (`fileio.atomic_path`).
"""

from __future__ import annotations

from pathlib import Path

from latency_lab.errors import UserError
from latency_lab.fileio import atomic_path, write_atomic
from latency_lab.network.spec import NetworkSpec

FORMATS = ("tflite", "onnx", "keras", "torch")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    return fmt


def export_network(spec: NetworkSpec, fmt: str, out: Path, resolution: int | None = None,
                   builder: str = "direct") -> str:
    """Write `spec` to `out` in `fmt`; returns a one-line description of what was written."""
    from latency_lab.models.files import check_builder

    check_format(fmt)
    check_builder(builder)
    out = Path(out)
    shape = f"{resolution}x{resolution}" if resolution else "dynamic H x W"
    if fmt == "tflite":
        from latency_lab.models.files import tflite_bytes

        write_atomic(out, tflite_bytes(spec, builder, resolution))
        return f"TFLite float32 ({builder} builder), input [1, {shape}, 3]"
    if fmt == "onnx":
        from latency_lab.models.build_onnx import export_onnx

        export_onnx(spec, out, resolution=resolution)
        return f"ONNX, input image [1, 3, {shape}]"
    if fmt == "keras":
        if out.suffix != ".keras":
            raise UserError(f"a Keras export is a .keras file, not {out.name}")
        from latency_lab.models.build_keras import build_keras

        model = build_keras(spec, resolution)
        with atomic_path(out) as tmp:
            model.save(tmp)
        return f"Keras model, input [1, {shape}, 3]"
    if out.suffix != ".pt2":
        raise UserError(f"a torch export is a torch.export .pt2 file, not {out.name}")
    import torch

    from latency_lab.models.build_torch import build_torch
    from latency_lab.network.spec import MAX_RESOLUTION, MIN_RESOLUTION

    size = resolution or spec.resolution
    dims = None if resolution else {"x": {
        2: torch.export.Dim("height", min=MIN_RESOLUTION, max=MAX_RESOLUTION),
        3: torch.export.Dim("width", min=MIN_RESOLUTION, max=MAX_RESOLUTION)}}
    program = torch.export.export(build_torch(spec), (torch.zeros(1, 3, size, size),),
                                  dynamic_shapes=dims)
    with atomic_path(out) as tmp:
        torch.export.save(program, tmp)
    return f"torch.export program, input [1, 3, {shape}]"
