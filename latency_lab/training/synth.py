"""`latency-lab dataset synth`: a deterministic image folder whose classes differ in fine detail.

Why a generated set: the training evaluators need images that every test, benchmark and demo
can make offline in seconds, and a set on which input resolution matters the way it does on
photographs (ImageNet accuracy rises with resolution because fine detail carries part of the
class). Real data sets cannot be downloaded here; users bring their own image folders.

What an image is: a texture filling the frame, drawn between two random colours under a
random linear shading, with pixel noise. A class is a pair (coarse pattern, fine detail):

- the *coarse pattern*, one of plain, stripes, plaid, rings and waves (classes / 2 of them;
  period 12-20% of the image width, random orientation, phase and centre), is the class's
  group, visible at any resolution;
- the *fine detail*, none ("smooth") or fine stripes ("grain", period 2.2-4 px of the written
  image, random angle), is the class within its group. An input resized below the image size
  loses the grain whose period falls under about two input pixels, so accuracy within a group
  falls towards chance (50%) as the resolution drops, smoothly, since the period varies from
  image to image. Measured with mbconv-tiny (10 epochs, 1000 training images of 96 px): 52%
  top-1 at 64 px, 89% at 96 px.

Why textures and not objects: a first version drew textured shapes among plain distractor
shapes (class = shape x texture); mbconv-tiny reached 14% after 10 epochs on 1000 images
(chance 10%), and with the texture filling the frame 37-55%, which leaves room to show what
resolution, width and depth buy within minutes on a CPU. Every class is invariant under a
horizontal flip (orientations are uniform), so the usual flip augmentation keeps labels.
Every image is drawn with its own random generator seeded by (seed, split, class, index), so
the bytes do not depend on the order of generation; textures are rendered at twice the size
and box-filtered down so that the files themselves hold no aliasing. The folder is written
whole or not at all (`fileio.atomic_dir`), with `synth.json` beside `train/` and `val/`
recording the generator version and parameters.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from latency_lab.errors import UserError
from latency_lab.fileio import atomic_dir

GENERATOR_VERSION = 1
COARSE_PERIOD = (0.12, 0.2)     # of the image width (12-19 px at 96 px): scales with --size
FINE_PERIOD = (2.2, 4.0)        # in pixels of the written image, whatever its size
NOISE = 0.03
COARSE = ("plain", "stripes", "plaid", "rings", "waves")
FINE = ("smooth", "grain")
MANIFEST = "synth.json"


class SynthError(UserError):
    """Parameters no data set can be made from, or an output folder in the way."""


@dataclass(frozen=True)
class SynthConfig:
    classes: int = 10
    per_class: int = 100          # training images per class
    val_per_class: int = 40
    size: int = 96
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in (("classes", 2, len(COARSE) * len(FINE)), ("per_class", 1, 100_000),
                                ("val_per_class", 1, 100_000), ("size", 16, 1024)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise SynthError(f"--{name.replace('_', '-')} must be in {low}..{high}, "
                                 f"got {value}")

    def class_name(self, c: int) -> str:
        return f"c{c:02d}-{COARSE[c // 2]}-{FINE[c % 2]}"

    def manifest(self) -> dict:
        return {"generator": "latency-lab dataset synth", "version": GENERATOR_VERSION,
                **asdict(self), "classes_names": [self.class_name(c) for c in range(self.classes)]}


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    ax = ((np.arange(n) + 0.5) / n).astype(np.float32)
    return np.meshgrid(ax, ax, indexing="xy")


def _grating(x, y, angle_deg: float, period_px: float, phase: float, scale: float) -> np.ndarray:
    """sin over the image; x, y in [0, 1), period in pixels of an image `scale` px wide."""
    a = math.radians(angle_deg)
    u = (x * math.cos(a) + y * math.sin(a)) * scale
    return np.sin(2 * math.pi * u / period_px + phase)


def _coarse(kind: str, x, y, rng: np.random.Generator, period: float, size: int) -> np.ndarray:
    """A coarse pattern in [-1, 1] (period in pixels of a `size`-px image)."""
    angle, phase = rng.uniform(0, 180), rng.uniform(0, 2 * math.pi)
    if kind == "plain":
        return np.zeros_like(x)
    if kind == "stripes":
        return _grating(x, y, angle, period, phase, size)
    if kind == "plaid":
        return 0.5 * (_grating(x, y, angle, period, phase, size)
                      + _grating(x, y, angle + 90, period, rng.uniform(0, 2 * math.pi), size))
    if kind == "rings":
        cx, cy = rng.uniform(0.35, 0.65, size=2)
        return np.sin(2 * math.pi * np.hypot(x - cx, y - cy) * size / period + phase)
    if kind == "waves":
        a = math.radians(angle)
        u = (x * math.cos(a) + y * math.sin(a)) * size
        v = (-x * math.sin(a) + y * math.cos(a)) * size
        return np.sin(2 * math.pi * (u + 0.35 * period * np.sin(2 * math.pi * v / (1.7 * period)))
                      / period + phase)
    raise ValueError(kind)


def render(config: SynthConfig, c: int, rng: np.random.Generator) -> np.ndarray:
    """One image of class `c` as uint8 HxWx3."""
    n = 2 * config.size                      # drawn at twice the size, box-filtered down
    x, y = _grid(n)
    coarse, fine = COARSE[c // 2], FINE[c % 2]
    t = 0.5 + rng.uniform(0.25, 0.35) * _coarse(coarse, x, y, rng,
                                                rng.uniform(*COARSE_PERIOD) * config.size,
                                                config.size)
    if fine == "grain":                      # fine stripes at a random angle and period
        t = t + rng.uniform(0.25, 0.35) * _grating(x, y, rng.uniform(0, 180),
                                                   rng.uniform(*FINE_PERIOD),
                                                   rng.uniform(0, 2 * math.pi), config.size)
    ink, paper = rng.uniform(0, 1, size=3), rng.uniform(0, 1, size=3)
    while np.abs(ink - paper).sum() < 0.8:   # enough contrast to see a texture at all
        ink, paper = rng.uniform(0, 1, size=3), rng.uniform(0, 1, size=3)
    img = paper * (1 - t[..., None]) + ink * t[..., None]
    light = 1 + x[..., None] * rng.uniform(-0.3, 0.3) + y[..., None] * rng.uniform(-0.3, 0.3)
    img = (img * light).reshape(config.size, 2, config.size, 2, 3).mean(axis=(1, 3))
    img += rng.normal(0, NOISE, size=img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def image_rng(config: SynthConfig, split: str, c: int, i: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, 0 if split == "train" else 1, c, i])


def generate(config: SynthConfig, out: str | Path, progress=None) -> Path:
    """Write DIR/train/<class>/<i>.png, DIR/val/<class>/<i>.png and DIR/synth.json.

    An existing DIR holding the same manifest is left as it is (the data set is
    deterministic); any other non-empty DIR is refused.
    """
    from PIL import Image

    out = Path(out)
    manifest = config.manifest()
    if out.exists():
        if not out.is_dir():
            raise SynthError(f"--out {out} exists and is not a directory")
        existing = out / MANIFEST
        if existing.exists():
            try:
                same = json.loads(existing.read_text()) == manifest
            except (OSError, ValueError):
                same = False
            if same:
                return out
        if any(out.iterdir()):
            raise SynthError(f"--out {out} exists and holds something else; give a new or "
                             f"empty directory")
    splits = (("train", config.per_class), ("val", config.val_per_class))
    total = config.classes * (config.per_class + config.val_per_class)
    done = 0
    with atomic_dir(out) as tmp:
        for split, count in splits:
            for c in range(config.classes):
                folder = tmp / split / config.class_name(c)
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    pixels = render(config, c, image_rng(config, split, c, i))
                    Image.fromarray(pixels).save(folder / f"{i:05d}.png", optimize=False)
                    done += 1
                    if progress:
                        progress(done, total)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


__all__ = ["SynthConfig", "SynthError", "generate", "render", "GENERATOR_VERSION", "MANIFEST"]
