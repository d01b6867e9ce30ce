"""ONNX of the torch model (the legacy TorchScript exporter): what `network export --format
onnx` writes and what the Jetson driver hands to TensorRT.

Input `image` [batch, 3, H, W] with H and W dynamic (or fixed), output `logits`; opset 17,
which TensorRT 8.5 and 10 both parse.

Which exporter: torch.onnx.export's `dynamo` keyword selects the TorchScript exporter
(`dynamo=False`, what this module uses: `dynamic_axes` as written here) or the torch.export
one; the keyword came with torch 2.5 and its default turned to True in 2.9. The older wheels
Jetsons run (JetPack 5/6: torch 2.0-2.4) have only the TorchScript exporter, and their
`export()` (torch/onnx/utils.py: `..., export_modules_as_functions, autograd_inlining)`, no
**kwargs) raises a TypeError for the keyword, so it is passed only where the signature has it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from latency_lab.fileio import atomic_path
from latency_lab.network.spec import NetworkSpec


INPUT, OUTPUT = "image", "logits"
ONNX_OPSET = 17          # LayerNorm etc. not needed; 17 is parsed by TensorRT 8.5 and 10


def export_onnx(spec: NetworkSpec, path: Path, opset: int = ONNX_OPSET, batch_size: int = 1,
                seed: int = 0, resolution: int | None = None) -> Path:
    """ONNX of the torch model, input `image` [batch, 3, H, W] with H and W dynamic, or fixed
    to `resolution`."""
    import warnings

    import torch

    from latency_lab.models.build_torch import build_torch

    model = build_torch(spec, seed=seed).eval()
    size = resolution or spec.resolution
    example = torch.zeros(batch_size, 3, size, size)
    path = Path(path)
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, on purpose
        torch.onnx.export(model, (example,), str(tmp), opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes=None if resolution else {INPUT: {2: "height", 3: "width"}},
                          **torchscript_exporter(torch.onnx.export))
    return path


def torchscript_exporter(export) -> dict:
    """The keywords that choose the TorchScript exporter: `dynamo=False` where `export` takes
    it (torch >= 2.5), nothing where it does not (older torch: the only exporter there)."""
    try:
        params = inspect.signature(export).parameters
    except (TypeError, ValueError):   # a builtin without a signature: pass nothing extra
        return {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {"dynamo": False} if "dynamo" in params or takes_any else {}
