"""A folder decoded once into a cached array: the same pixels, batches and weights as from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latency_lab.training import decoded as dec
from latency_lab.training.data import ImageDataset, loader
from latency_lab.training.imagefolder import scan
from latency_lab.training.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """RGB, grey and palette images of different sizes, in train/ and val/."""
    root = tmp_path_factory.mktemp("mixed") / "set"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = 20 + 3 * i, 30 - 2 * i
                rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                im = [Image.fromarray(rgb), Image.fromarray(rgb[..., 0]),
                      Image.fromarray(rgb).convert("P")][i % 3]
                im.save(root / split / c / f"{i}.png")
    return root


def _batches(ds, workers=0, epoch=1):
    return [(x.clone(), y.clone()) for x, y in loader(ds, 4, epoch, workers, shuffle=True)]


def test_the_array_holds_every_image_as_pillow_decodes_it(mixed):
    folder = scan(mixed)
    for split, items in (("train", folder.train), ("val", folder.val)):
        got = dec.pixels(folder, split)
        assert len(got) == len(items)
        for i, (rel, _) in enumerate(items):
            with Image.open(mixed / rel) as im:
                want = im.convert("RGB")
                assert np.array_equal(np.asarray(got.image(i).convert("RGB")), np.asarray(want))
                assert got.image(i).mode == ("L" if im.mode == "L" else "RGB")


def test_batches_from_the_array_equal_batches_from_the_files(mixed):
    folder = scan(mixed)
    for split, train in (("train", True), ("val", False)):
        files = ImageDataset(folder, split, 24, train=train, min_scale=0.3, seed=2)
        array = ImageDataset(folder, split, 24, train=train, min_scale=0.3, seed=2,
                             decoded=dec.pixels(folder, split))
        for (xa, ya), (xb, yb) in zip(_batches(files), _batches(array, workers=1)):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_the_second_use_reads_the_cache_and_a_damaged_cache_is_rebuilt(mixed, monkeypatch):
    folder = scan(mixed)
    first = dec.pixels(folder, "train")
    want = np.array(first.flat)
    flat_path, index_path = dec._paths(folder, "train")
    assert flat_path.exists() and index_path.exists()

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")
    monkeypatch.setattr(dec, "_decode", no_decoding)
    again = dec.pixels(folder, "train")
    assert isinstance(again.flat, np.memmap) and np.array_equal(again.flat, want)
    monkeypatch.undo()
    flat_path.write_bytes(flat_path.read_bytes()[:-5])        # cut short
    rebuilt = dec.pixels(folder, "train")
    assert np.array_equal(np.asarray(rebuilt.flat), want)


def test_the_key_follows_the_data_set(mixed, tmp_path):
    folder = scan(mixed)
    assert dec.cache_key(folder, "train") != dec.cache_key(folder, "val")
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(mixed, copy)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(copy / "train" / "a" / "0.png")
    changed = scan(copy)
    assert dec.cache_key(changed, "train") != dec.cache_key(folder, "train")
    assert np.asarray(dec.pixels(changed, "train").image(0)).shape == (9, 9, 3)


def test_a_set_too_large_to_cache_is_read_from_its_files(mixed, monkeypatch):
    monkeypatch.setattr(dec, "MAX_BYTES", 1000)
    said = []
    assert dec.pixels(scan(mixed), "train", log=said.append) is None
    assert "reading its files every epoch" in said[0]


@pytest.mark.slow
def test_a_training_from_the_array_is_the_training_from_the_files(tmp_path, monkeypatch, tiny):
    from latency_lab.training.train import Recipe, Runtime, load_weights, train

    data = scan(generate(SynthConfig(classes=3, per_class=8, val_per_class=3, size=32),
                         tmp_path / "set"))
    recipe = Recipe(epochs=2, batch=8)
    runs = []
    for decode in ("files", "once"):
        monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / decode))
        runs.append(train(tiny, 32, data, recipe, Runtime(workers=0, progress=False,
                                                          decode=decode)))
    a, b = runs
    assert a.key == b.key and a.top1 == b.top1
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    wa, wb = load_weights(a), load_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_the_decode_benchmark_times_every_pipeline(tmp_path):
    """The benchmark's plumbing on a tiny folder (its figures are for results/, not here)."""
    from benchmark_helpers import load_benchmark

    bench = load_benchmark("decode_benchmark")
    data = generate(SynthConfig(classes=2, per_class=40, val_per_class=2, size=32),
                    tmp_path / "set")
    r = bench.measure(data, steps=2, repeats=1, batch=8)
    for n in ("files_w1", "files_w0", "array_w0", "array_w1", "preloaded"):
        assert r[n]["images_per_s"] > 0 and len(r[n]["wall_s"]) == 1
    assert r["train_images"] == 80 and r["array_mb"] == pytest.approx(80 * 32 * 32 * 3 / 1e6)
    bench.write(tmp_path, r)
    assert "array, in process" in (tmp_path / "decode_benchmark.md").read_text()
