"""The synthetic data set, the image-folder reader and its torch pipeline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latency_lab.cli.app import main
from latency_lab.training.imagefolder import DataError, scan
from latency_lab.training.synth import FINE, SynthConfig, SynthError, generate, image_rng, render

SMALL = SynthConfig(classes=4, per_class=6, val_per_class=3, size=32, seed=0)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return generate(SMALL, tmp_path_factory.mktemp("synth") / "set")


def test_synth_is_deterministic_and_seeded(small_set, tmp_path):
    again = generate(SMALL, tmp_path / "again")
    assert _digest(again) == _digest(small_set)
    other = generate(SynthConfig(**{**SMALL.__dict__, "seed": 1}), tmp_path / "other")
    assert _digest(other) != _digest(small_set)
    a, b = scan(small_set), scan(again)
    assert a.fingerprint == b.fingerprint and a.split == "folders"
    assert len(a.classes) == 4 and len(a.train) == 24 and len(a.val) == 12


def test_synth_reuses_its_own_folder_and_refuses_a_foreign_one(small_set, tmp_path):
    before = _digest(small_set)
    assert generate(SMALL, small_set) == small_set and _digest(small_set) == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SynthError, match="holds something else"):
        generate(SMALL, foreign)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign"]  # no temporary left
    with pytest.raises(SynthError, match="classes"):
        SynthConfig(classes=11)


def _high_frequency_share(img: np.ndarray) -> float:
    """Share of the image's (zero-mean) spectral energy above half the Nyquist frequency."""
    g = img.astype(float).mean(axis=2)
    f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    n = g.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    return float(f[np.hypot(xx, yy) > n / 4].sum() / f.sum())


def _auc(pos: list[float], neg: list[float]) -> float:
    return float(np.mean([p > q for p in pos for q in neg]))


def test_fine_detail_separates_classes_at_full_size_and_not_when_downsized():
    """Within a group, 'grain' differs from 'smooth' by high-frequency energy that resizing
    to a third removes: what makes accuracy rise with resolution."""
    config = SynthConfig(size=48)
    assert FINE == ("smooth", "grain")
    scores = {0: [], 1: []}, {0: [], 1: []}
    for c in range(10):
        for i in range(6):
            img = render(config, c, image_rng(config, "train", c, i))
            small = np.asarray(Image.fromarray(img).resize((16, 16), Image.BILINEAR))
            scores[0][c % 2].append(_high_frequency_share(img))
            scores[1][c % 2].append(_high_frequency_share(small))
    full, third = (_auc(s[1], s[0]) for s in scores)
    assert full > 0.8, full          # 0.87 measured (seed 0, 60 images)
    assert third < 0.65, third       # 0.52 measured: near chance


def _folder(root: Path, layout: dict[str, int], size: int = 12) -> Path:
    for rel, n in layout.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((size, size, 3), 40 * i % 255, np.uint8)).save(d / f"{i}.png")
    return root


def test_seeded_split_is_stratified_and_repeatable(tmp_path):
    root = _folder(tmp_path / "flat", {"cat": 10, "dog": 5})
    (root / "cat" / "README.txt").write_text("ignored")
    a, b = scan(root), scan(root)
    assert a == b and a.split.startswith("seeded")
    assert a.classes == ("cat", "dog")
    assert sorted(label for _, label in a.val) == [0, 0, 1]
    assert len(a.train) == 12 and not set(a.train) & set(a.val)
    assert scan(root, split_seed=1).val != a.val
    assert scan(root, split_seed=1).fingerprint != a.fingerprint


def test_fingerprint_follows_the_files(tmp_path):
    root = _folder(tmp_path / "d", {"train/a": 3, "train/b": 3, "val/a": 1, "val/b": 1})
    fp = scan(root).fingerprint
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "train/a/0.png")
    fp2 = scan(root).fingerprint
    assert fp2 != fp
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "train/b/new.jpg")
    assert scan(root).fingerprint not in (fp, fp2)


@pytest.mark.parametrize("layout, message", [
    (None, "does not exist"),
    ({}, "no class folders"),
    ({"only": 3}, "two or more"),
    ({"a": 2, "b": 0}, "class 'b' .* has no images"),
    ({"train/a": 2, "train/b": 2, "val/a": 1, "val/c": 1},
     r"differ .* only in train: \['b'\]; only in val: \['c'\]"),
    ({"train/a": 2, "train/b": 2}, "train/ but no val/"),
])
def test_bad_folders_are_one_clear_error(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout is not None:
        root.mkdir()
        _folder(root, layout)
    with pytest.raises(DataError, match=message):
        scan(root)


def test_unreadable_images_are_left_out_with_a_warning(tmp_path):
    root = _folder(tmp_path / "d", {"a": 12, "b": 12})
    noisy = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(root / "a" / "0.png")
    data = (root / "a" / "0.png").read_bytes()
    (root / "a" / "0.png").write_bytes(data[: len(data) // 2])          # truncated
    (root / "b" / "fake.jpg").write_text("not an image at all")
    folder = scan(root)
    assert dict(folder.skipped) == {"a/0.png": "truncated", "b/fake.jpg": "not an image"}
    assert len(folder.train) + len(folder.val) == 23
    assert folder.warning().startswith("2 unreadable image(s) left out of")
    assert "a/0.png (truncated)" in folder.warning()
    for i in range(1, 5):   # now 5 of 25 are bad: more than 10%
        (root / "b" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="6 of 25 images .* cannot be read"):
        scan(root)


def test_a_class_left_empty_by_bad_images_is_an_error(tmp_path):
    root = _folder(tmp_path / "d", {"train/a": 20, "train/b": 1, "val/a": 2, "val/b": 2})
    (root / "train/b/0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="class 'b' has no readable training images"):
        scan(root)


def test_pipeline_is_the_same_with_any_number_of_workers(small_set):
    import torch

    from latency_lab.training.data import ImageDataset, loader

    folder = scan(small_set)
    ds = ImageDataset(folder, "train", 24, train=True, min_scale=0.3, seed=3)
    runs = [[(x.clone(), y.clone()) for x, y in loader(ds, 5, epoch=2, workers=w, shuffle=True)]
            for w in (0, 2)]
    assert len(runs[0]) == 5
    for (xa, ya), (xb, yb) in zip(*runs):
        assert xa.dtype == torch.uint8 and xa.shape[1:] == (3, 24, 24)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other_epoch = next(iter(loader(ds, 5, epoch=3, workers=0, shuffle=True)))
    assert not torch.equal(other_epoch[0], runs[0][0][0])
    val = ImageDataset(folder, "val", 24, train=False)
    assert torch.equal(val[0][0], val[(7, 0)][0])    # evaluation ignores the epoch


def test_cli_dataset_synth_and_show(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["dataset", "synth", "--out", str(out), "--classes", "2", "--per-class", "3",
                 "--val-per-class", "1", "--size", "16"]) == 0
    text = capsys.readouterr().out
    assert "2 classes, 6 train / 2 val images" in text and "c01-plain-grain" in text
    shutil.rmtree(out / "val")
    assert main(["dataset", "show", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "train/ but no val/" in err and "\n" not in err
    assert main(["dataset", "synth", "--out", str(tmp_path / "x"), "--size", "4"]) == 2
    assert "--size must be in 16..1024" in capsys.readouterr().err
