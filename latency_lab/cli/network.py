"""CLI commands `network list`, `network show` and `network export` (registered in cli/app.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from latency_lab.cli.options import AsJson, Resolution

network_app = typer.Typer(no_args_is_help=True, help="Network presets and specs.")
@network_app.command("list")
def network_list() -> None:
    """List the preset networks."""
    from latency_lab.network import complexity
    from latency_lab.network import presets

    for name in presets.names():
        spec = presets.get(name)
        print(f"{name:26s} {spec.fingerprint}  {complexity.params(spec):>10,d} params  "
              f"{complexity.macs(spec) / 1e9:6.3f} GMACs @ {spec.resolution}  ({spec.source})")


@network_app.command("show")
def network_show(
    name: str = typer.Argument(..., help="Preset name or path to a network JSON file."),
    resolution: Resolution = None,
    as_json: AsJson = False,
) -> None:
    """Print a network's spec, parameter count and MACs."""
    from latency_lab.network import complexity
    from latency_lab.network.presets import load_network
    from latency_lab.network.spec import check_resolution

    spec = load_network(name)
    res = check_resolution(resolution) if resolution is not None else spec.resolution
    n_params, n_macs = complexity.params(spec), complexity.macs(spec, res)
    if as_json:
        print(json.dumps({**spec.to_dict(), "fingerprint": spec.fingerprint,
                          "params": n_params, "macs": n_macs, "macs_resolution": res}, indent=2))
        return
    print(f"{spec.name}  fingerprint {spec.fingerprint}  ({spec.source or 'custom'})")
    print(f"resolution {spec.resolution}, activation {spec.activation}, classes {spec.num_classes}")
    print(f"stem   width {spec.stem.width:5d}  k{spec.stem.kernel} s{spec.stem.stride}")
    for i, s in enumerate(spec.stages):
        blocks = " ".join(f"k{b.kernel}e{b.expansion:g}" + ("s2" if b.stride == 2 else "")
                          for b in s.blocks)
        print(f"stage {i} width {s.width:5d}  depth {s.depth:2d}  se {s.se_ratio:g}  {blocks}")
    print(f"head   width {spec.head_width:5d}")
    print(f"params {n_params:,d}   MACs {n_macs:,d} ({n_macs / 1e9:.3f} G) at {res}x{res}")


@network_app.command("export")
def network_export(
    name: str = typer.Argument(..., help="Preset name, network JSON file, or a search's result "
                                         "directory (its winner)."),
    fmt: str = typer.Option(..., "--format", help="tflite, onnx, keras (.keras) or torch "
                                                  "(torch.export .pt2)."),
    out: Path = typer.Option(..., help="File to write."),
    resolution: Resolution = None,
    builder: Optional[str] = typer.Option(None, help="tflite only: direct (the emitter, the "
                                                     "default) or keras (the TFLite "
                                                     "converter)."),
) -> None:
    """Write a network as a model file (random initial weights) to deploy or benchmark elsewhere.

    torch, onnx and keras need their extras (one line says which when missing); tflite needs
    none. H and W stay dynamic unless --resolution fixes them. The weights are random, and the
    command says what that means for the outputs, measured on the written file."""
    from latency_lab.errors import UserError
    from latency_lab.models.export import check_format, export_network, outputs_note
    from latency_lab.fileio import check_output_file
    from latency_lab.models.files import check_builder
    from latency_lab.network.presets import load_network
    from latency_lab.network.spec import check_resolution

    if builder is not None and fmt != "tflite":   # was accepted, and ignored (issue 25)
        raise UserError(f"--builder {builder} applies to --format tflite only; a {fmt} file is "
                        "made by one builder")
    builder = check_builder(builder or "direct")
    check_format(fmt, builder)
    spec = load_network(name)
    res = check_resolution(resolution) if resolution is not None else None
    check_output_file(out, "--out")
    what = export_network(spec, fmt, out, res, builder)
    print(f"wrote {out}: {spec.name} ({spec.fingerprint}), {what}")
    if out.is_file():    # measured on the written file; a stream (/dev/stdout) is not read back
        print(f"note: {outputs_note(spec, fmt, out, res)}")
    else:
        print("note: weights are seeded random initialisations (untrained): the outputs mean "
              "nothing; the file is for latency and deployment tests, not predictions")
