"""Torch data pipeline for an `ImageFolder`: decode, crop, resize and flip in DataLoader workers.

torchvision cannot be imported beside the pinned CPU torch here, so the transforms are written
with Pillow and numpy, following torchvision's definitions:

- training: RandomResizedCrop (area scale [min_scale, 1], aspect ratio [3/4, 4/3] on a log
  scale, ten tries then a centre crop) resized to the training resolution with Pillow's
  antialiased bilinear filter in one step (`Image.resize(box=...)`), and a horizontal flip
  with probability 1/2;
- evaluation: a centre crop of `crop_pct` of the shorter side, resized to the resolution
  (the ImageNet convention, 0.875; EfficientNet's 224/(224+32) = 0.875 too).

Pixels come from the image files, or from the split decoded once into a cached array
(`training.decoded`, `decoded=`): the same pixels, so the same batches.

Workers return uint8 CHW tensors (four times less to pass between processes than floats);
the trainer converts and normalises them on its device. Randomness never depends on which
worker handles an image or how many workers there are: the sampler yields (epoch, index) and
each image's crop and flip are drawn from a generator seeded by (seed, epoch, index); the
order of an epoch is a permutation seeded by (seed, epoch). So a training resumed at epoch e
sees exactly the batches the uninterrupted one would have seen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from latency_lab.training.decoded import Decoded
from latency_lab.training.imagefolder import ImageFolder

MEAN = (0.485, 0.456, 0.406)     # ImageNet statistics, as every torchvision recipe uses
STD = (0.229, 0.224, 0.225)


def random_resized_box(width: int, height: int, rng: np.random.Generator,
                       scale: tuple[float, float], ratio=(3 / 4, 4 / 3)) -> tuple[float, ...]:
    """torchvision's RandomResizedCrop.get_params, as a Pillow box (left, top, right, bottom)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return (left, top, left + w, top + h)
    in_ratio = width / height            # fallback: the largest centre crop within `ratio`
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return (left, top, left + w, top + h)


def center_box(width: int, height: int, crop_pct: float) -> tuple[float, ...]:
    side = min(width, height) * crop_pct
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


class ImageDataset(Dataset):
    """Items of an ImageFolder split as (uint8 CHW tensor, label); keys are (epoch, index)."""

    def __init__(self, folder: ImageFolder, split: str, resolution: int, train: bool,
                 min_scale: float = 0.25, crop_pct: float = 0.875, seed: int = 0,
                 decoded: Decoded | None = None):
        self.root, self.decoded = Path(folder.root), decoded
        self.items = folder.train if split == "train" else folder.val
        self.resolution, self.is_train = int(resolution), train
        self.min_scale, self.crop_pct, self.seed = min_scale, crop_pct, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> tuple[torch.Tensor, int]:
        from PIL import Image

        epoch, index = key if isinstance(key, tuple) else (0, key)
        rel, label = self.items[index]
        if self.decoded is not None:     # the same pixels, decoded once (training.decoded)
            im = self.decoded.image(index).convert("RGB")
        else:
            with Image.open(self.root / rel) as im:
                im = im.convert("RGB")
        size = (self.resolution, self.resolution)
        if self.is_train:
            rng = np.random.default_rng([self.seed, epoch, index])
            im = im.resize(size, Image.BILINEAR,
                           box=random_resized_box(im.width, im.height, rng, (self.min_scale, 1.0)))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            im = im.resize(size, Image.BILINEAR, box=center_box(im.width, im.height, self.crop_pct))
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()), label


class EpochSampler(Sampler):
    """(epoch, index) keys: a permutation seeded by (seed, epoch), or the plain order."""

    def __init__(self, n: int, epoch: int, seed: int, shuffle: bool):
        self.n, self.epoch, self.seed, self.shuffle = n, epoch, seed, shuffle

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (np.random.default_rng([self.seed, 1_000_003, self.epoch]).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        return iter((self.epoch, int(i)) for i in order)

    def __len__(self) -> int:
        return self.n


def loader(dataset: ImageDataset, batch: int, epoch: int, workers: int, shuffle: bool,
           drop_last: bool = False, pin: bool = False) -> DataLoader:
    """A DataLoader starting at `epoch`; `workers` 0 decodes in the calling process.

    Its workers persist from epoch to epoch (starting one costs ~0.1-0.5 s here); the sampler
    runs in this process, so `set_epoch(loader, e)` before iterating selects epoch e."""
    return DataLoader(dataset, batch_size=batch, sampler=EpochSampler(len(dataset), epoch,
                                                                      dataset.seed, shuffle),
                      num_workers=workers, drop_last=drop_last, pin_memory=pin,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers else None)


def set_epoch(data_loader: DataLoader, epoch: int) -> DataLoader:
    data_loader.sampler.epoch = epoch
    return data_loader


def normalizer(device: torch.device, channels_last: bool):
    """uint8 NCHW batch -> normalised float batch on `device`."""
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255

    def normalize(x: torch.Tensor) -> torch.Tensor:
        x = (x.to(device, non_blocking=True).float() - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return normalize


__all__ = ["ImageDataset", "EpochSampler", "loader", "set_epoch", "normalizer", "random_resized_box",
           "center_box", "MEAN", "STD"]
