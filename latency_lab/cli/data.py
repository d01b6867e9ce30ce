"""CLI commands `dataset synth`, `dataset fashion-mnist` and `dataset show` (registered in
latency_lab/cli/app.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from typing import Optional

import typer

from latency_lab.cli.options import Seed, ValPerClass

dataset_app = typer.Typer(no_args_is_help=True, help="Image-folder data sets for the training "
                                                     "evaluators.")


@dataset_app.command("synth")
def dataset_synth(
    out: Path = typer.Option(..., help="Folder to create (absent or empty)."),
    classes: int = typer.Option(10, help="Number of classes (2..10)."),
    per_class: int = typer.Option(100, "--per-class", help="Training images per class."),
    val_per_class: ValPerClass = 40,
    size: int = typer.Option(96, help="Image side in pixels (fine detail: 2.2-4 px periods)."),
    seed: Seed = 0,
) -> None:
    """Generate the deterministic synthetic image folder (train/ and val/)."""
    from latency_lab.training.synth import SynthConfig, generate

    config = SynthConfig(classes=classes, per_class=per_class, val_per_class=val_per_class,
                         size=size, seed=seed)
    total = classes * (per_class + val_per_class)
    step = max(1, total // 10)

    def progress(done: int, n: int) -> None:
        if done % step == 0 or done == n:
            print(f"\r{done}/{n} images", end="" if done < n else "\n", file=sys.stderr,
                  flush=True)

    generate(config, out, progress=progress)
    show(out)


def _progress_printer(total_hint: str = "images"):
    state = {"last": -1}

    def progress(done: int, n: int) -> None:
        tenth = done * 10 // n
        if tenth != state["last"] or done == n:
            state["last"] = tenth
            print(f"\r{done}/{n} {total_hint}", end="" if done < n else "\n", file=sys.stderr,
                  flush=True)
    return progress


@dataset_app.command("fashion-mnist")
def dataset_fashion_mnist(
    out: Path = typer.Option(..., help="Folder to create (absent or empty): train/ and val/."),
    source: Optional[Path] = typer.Option(
        None, help="Folder of the four Fashion-MNIST IDX files (.gz or plain; default: where "
                   "Debian's dataset-fashion-mnist puts them, /usr/share/datasets/"
                   "fashion-mnist)."),
    train_per_class: Optional[int] = typer.Option(
        None, "--train-per-class", help="A seeded random N training images per class "
                                        "(default: all 6,000)."),
    val_per_class: ValPerClass = None,
    seed: Seed = 0,
) -> None:
    """Write Fashion-MNIST (real 28x28 grey images, 10 classes) as an image folder."""
    from latency_lab.fileio import check_output_dir
    from latency_lab.training.fashion_mnist import check_counts, export, locate

    check_counts(train_per_class, val_per_class)
    check_output_dir(out, "--out")
    locate(source)
    export(out, source, train_per_class, val_per_class, seed, progress=_progress_printer())
    show(out)


@dataset_app.command("show")
def dataset_show(
    data: Path = typer.Argument(..., help="Image folder (train/ and val/, or class folders)."),
    val_fraction: float = typer.Option(0.2, help="Validation share of a seeded split."),
    split_seed: int = typer.Option(0, min=0, max=2**63 - 1, help="Seed of a seeded split."),
) -> None:
    """Check an image folder as the training evaluators read it: classes, split, fingerprint."""
    show(data, val_fraction, split_seed)


def show(data: Path, val_fraction: float = 0.2, split_seed: int = 0) -> None:
    from collections import Counter

    from latency_lab.training.imagefolder import scan

    folder = scan(data, val_fraction, split_seed)
    warning = folder.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(folder.describe())
    train, val = Counter(c for _, c in folder.train), Counter(c for _, c in folder.val)
    for i, name in enumerate(folder.classes):
        print(f"  {name:28s} {train[i]:6d} train {val[i]:6d} val")
