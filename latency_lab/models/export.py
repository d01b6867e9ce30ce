"""Write a network as a file a user deploys or benchmarks elsewhere (`latency-lab network export`).

| format | file | made by |
|---|---|---|
| tflite | float32 flatbuffer, input `image` [1, H, W, 3] | `builder` direct (the emitter) or keras (the converter) |
| onnx | ONNX (opset of the TensorRT driver), input `image` [1, 3, H, W] | torch, legacy exporter |
| keras | Keras 3 `.keras` archive | `build_keras` |
| torch | `torch.export` program (`.pt2`, `torch.export.load(...).module()`), input [1, 3, H, W] | `build_torch` |

H and W stay dynamic unless a resolution fixes them: from 32 to 2048 for tflite, onnx and
keras; for torch from one more than the network's total stride (33 for EfficientNet's 32) to
2048, because torch.export proves its shape guards over the whole range and a 1-pixel last
feature map takes another path (without the lower bound, B0's export failed with a 104-line
`torch._dynamo` traceback). (TorchScript is deprecated in torch 2.13, hence `torch.export`.)

Weights are seeded random initialisations, as Keras draws them (nothing here trains): such a
network's logits are about 1e-13 for any input (B0), so every export says so, with the outputs
of two random images measured on the file's own runtime. Every file is written whole or not at
all (`fileio.atomic_path`); a format's extra (torch, onnx, keras) is checked before any work
(`latency_lab.extras`).
"""

from __future__ import annotations

from pathlib import Path

from latency_lab.errors import UserError
from latency_lab.extras import require
from latency_lab.fileio import atomic_path, write_atomic
from latency_lab.network.spec import NetworkSpec

FORMATS = ("tflite", "onnx", "keras", "torch")
# what each format needs beyond the core (the tflite direct emitter needs nothing)
FORMAT_EXTRAS = {"onnx": ("torch",), "keras": ("keras",), "torch": ("torch",)}
PROBE_SEEDS = (1, 2)      # the random images the outputs note is measured on


def check_format(fmt: str, builder: str = "direct") -> str:
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    extras = FORMAT_EXTRAS.get(fmt, ()) + (("keras",) if fmt == "tflite" and builder == "keras"
                                           else ())
    if extras:
        require(f"network export --format {fmt}", *extras)
    return fmt


def total_stride(spec: NetworkSpec) -> int:
    stride = spec.stem.stride
    for stage in spec.stages:
        for b in stage.blocks:
            stride *= b.stride
    return stride


def export_network(spec: NetworkSpec, fmt: str, out: Path, resolution: int | None = None,
                   builder: str = "direct") -> str:
    """Write `spec` to `out` in `fmt`; returns a one-line description of what was written."""
    from latency_lab.models.files import check_builder

    check_format(fmt, builder)
    check_builder(builder)
    out = Path(out)
    shape = f"{resolution}x{resolution}" if resolution else "dynamic H x W"
    if fmt == "keras" and out.suffix != ".keras":
        raise UserError(f"a Keras export is a .keras file, not {out.name}")
    if fmt == "torch" and out.suffix != ".pt2":
        raise UserError(f"a torch export is a torch.export .pt2 file, not {out.name}")
    if fmt == "tflite":
        from latency_lab.models.files import tflite_bytes

        data = tflite_bytes(spec, builder, resolution)
        write_atomic(out, data)
        return f"TFLite float32 ({builder} builder), input [1, {shape}, 3]"
    if fmt == "onnx":
        from latency_lab.models.build_onnx import export_onnx

        export_onnx(spec, out, resolution=resolution)
        return f"ONNX, input image [1, 3, {shape}]"
    if fmt == "keras":
        from latency_lab.models.build_keras import build_keras

        model = build_keras(spec, resolution)
        with atomic_path(out) as tmp:
            model.save(tmp)
        return f"Keras model, input [1, {shape}, 3]"
    return _export_torch(spec, out, resolution, shape)


def _export_torch(spec: NetworkSpec, out: Path, resolution: int | None, shape: str) -> str:
    import torch

    from latency_lab.models.build_torch import build_torch
    from latency_lab.network.spec import MAX_RESOLUTION, MIN_RESOLUTION

    size = resolution or spec.resolution
    low = max(MIN_RESOLUTION, total_stride(spec) + 1)
    dims = None if resolution else {"x": {
        2: torch.export.Dim("height", min=low, max=MAX_RESOLUTION),
        3: torch.export.Dim("width", min=low, max=MAX_RESOLUTION)}}
    try:
        program = torch.export.export(build_torch(spec), (torch.zeros(1, 3, size, size),),
                                      dynamic_shapes=dims)
    except Exception as exc:   # torch's own errors span many classes and a hundred lines
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"torch.export cannot export {spec.name} with dynamic H and W "
                        f"({first[:200]}); give --resolution R to export at a fixed size"
                        if dims else f"torch.export cannot export {spec.name}: {first[:200]}"
                        ) from None
    with atomic_path(out) as tmp:
        torch.export.save(program, tmp)
    if dims:
        shape = f"dynamic H x W ({low}..{MAX_RESOLUTION})"
    return f"torch.export program, input [1, 3, {shape}]"


def outputs_note(spec: NetworkSpec, fmt: str, out: Path, resolution: int | None = None) -> str:
    """What the written file computes for two random images, measured on its own runtime
    (LiteRT, torch, Keras; ONNX through the torch model it was exported from): random weights
    give outputs near zero that say nothing, and a user should know that the network is alive
    but untrained."""
    import numpy as np

    from latency_lab.fileio import is_std_stream

    if is_std_stream(out) or not Path(out).is_file():   # streamed (/dev/stdout): no file to read
        return ("weights are seeded random initialisations (untrained): the file is for latency "
                "and deployment tests, not predictions (its outputs were not measured: it went "
                "to a stream)")
    size = resolution or spec.resolution
    images = [np.random.default_rng(s).random((1, size, size, 3), np.float32)
              for s in PROBE_SEEDS]
    outs = [np.asarray(o, dtype=np.float64).ravel() for o in _run(spec, fmt, out, images)]
    peak = max(float(np.abs(o).max()) for o in outs)
    diff = float(np.abs(outs[0] - outs[1]).max())
    return (f"weights are seeded random initialisations (untrained): for two random images the "
            f"outputs reach {peak:.1e} and differ by {diff:.1e}, which means nothing; the file "
            f"is for latency and deployment tests, not predictions")


def _run(spec: NetworkSpec, fmt: str, out: Path, images):
    if fmt == "tflite":
        from latency_lab.models.litert import quiet_interpreter

        interp = quiet_interpreter(model_path=str(out))
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], list(images[0].shape), strict=True)
        interp.allocate_tensors()
        result = []
        for x in images:
            interp.set_tensor(detail["index"], x)
            interp.invoke()
            result.append(interp.get_tensor(interp.get_output_details()[0]["index"]).copy())
        return result
    if fmt == "keras":
        import keras

        model = keras.models.load_model(out)
        return [model(x, training=False).numpy() for x in images]
    import torch

    if fmt == "torch":
        model = torch.export.load(str(out)).module()
    else:   # onnx: the torch model it was exported from (onnxruntime is the onnx extra's)
        from latency_lab.models.build_torch import build_torch

        model = build_torch(spec)
    with torch.no_grad():
        return [model(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
                for x in images]
