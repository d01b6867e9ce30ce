"""Image folders read regular files only (issue 25): a FIFO named x.png is never opened (it
blocked `dataset show` and `train:` forever), links are followed once (loops end), dangling
links, names that are not UTF-8 and decompression bombs are left out with their reason, and
the order (hence the fingerprint) of what is read is os.walk's, as before."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from latency_lab.training.imagefolder import IMAGE_EXTENSIONS, DataError, scan

EXE = Path(sys.executable).with_name("latency-lab")


def _folder(root: Path, per_class: int = 12) -> Path:
    for c, shade in (("a", 40), ("b", 200)):
        (root / c / "sub").mkdir(parents=True)
        for i in range(per_class):
            where = root / c / ("sub" if i % 3 == 0 else "")
            Image.new("RGB", (8, 8), (shade, i, 0)).save(where / f"{i:02d}.png")
    return root


def _png_claiming(width: int, height: int, tmp: Path) -> bytes:
    """A small real PNG whose header claims width x height pixels (a bomb's first bytes)."""
    Image.new("L", (8, 8)).save(tmp)
    data = bytearray(tmp.read_bytes())
    ihdr = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _reasons(folder) -> dict[str, str]:
    return dict(folder.skipped)


@pytest.mark.slow   # a subprocess (a regression would block: it is stopped at the timeout)
def test_a_fifo_named_like_an_image_is_never_opened(tmp_path):
    root = _folder(tmp_path / "data")
    os.mkfifo(root / "a" / "x.png")
    p = subprocess.run([str(EXE), "dataset", "show", str(root)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, LATENCY_LAB_CACHE=str(tmp_path / "c")))
    assert p.returncode == 0, p.stderr
    assert "a/x.png (not a regular file (a FIFO, socket or device): not opened)" in p.stderr


def test_sockets_dangling_links_and_odd_names_are_left_out_with_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "data", per_class=24)       # 4 left out of 52: under 10%
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(root / "a" / "s.png"))
    s.close()
    os.symlink("missing.png", root / "a" / "gone.png")
    (root / "b" / os.fsdecode(b"\xff\xfe.png")).write_bytes((root / "b" / "01.png").read_bytes())
    (root / "b" / "bomb.png").write_bytes(_png_claiming(100_000, 100_000, tmp_path / "t.png"))
    folder = scan(root)
    reasons = _reasons(folder)
    assert reasons["a/s.png"].startswith("not a regular file")
    assert reasons["a/gone.png"] == "dangling link to missing.png"
    assert reasons["b/\\xff\\xfe.png"] == "name not UTF-8"
    assert reasons["b/bomb.png"].startswith("too large")
    assert len(folder.train) + len(folder.val) == 48
    assert "4 unreadable image(s) left out" in folder.warning()


def test_an_image_above_the_bomb_limit_is_not_decoded(tmp_path, monkeypatch):
    """Between 1x and 2x Pillow's limit Pillow only warns, then decodes: refused here."""
    from latency_lab.training.imagefolder import image_problem

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    Image.new("L", (100, 50)).save(tmp_path / "big.png")        # 5,000 > 4,096 pixels
    assert image_problem(tmp_path / "big.png") == ("too large: 5,000 pixels, more than 4,096 "
                                                   "(Pillow's decompression-bomb limit)")
    Image.new("L", (60, 60)).save(tmp_path / "ok.png")
    assert image_problem(tmp_path / "ok.png") is None


def test_link_loops_are_followed_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "data")
    os.symlink(".", root / "a" / "l1")
    os.symlink(".", root / "a" / "l2")
    os.symlink("..", root / "b" / "up")
    (root / "b" / "far").mkdir()
    os.symlink(str(root / "a"), root / "b" / "far" / "to_a")     # another class's folder: once
    folder = scan(root)
    names = [p for p, _ in folder.train + folder.val]
    assert len(names) == len(set(names))
    assert sum(p.startswith("a/") for p in names) == 12


def test_a_class_folder_name_that_is_not_utf8_is_one_error(tmp_path):
    root = _folder(tmp_path / "data")
    (root / "b").rename(root / os.fsdecode(b"b\xff"))
    with pytest.raises(DataError, match=r"class folder .*b\\xff has a name that is not UTF-8"):
        scan(root)


def test_the_order_read_is_os_walks_so_fingerprints_stay(tmp_path, monkeypatch):
    """The walk was rewritten to follow links once; what it lists, and in which order, is
    still what os.walk(followlinks=True) listed, so data-set fingerprints do not change."""
    from latency_lab.training.imagefolder import _images

    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "data")
    (root / "a" / "sub" / "deeper").mkdir()
    Image.new("RGB", (8, 8)).save(root / "a" / "sub" / "deeper" / "z.PNG")
    (root / "a" / ".hidden.png").write_bytes(b"x")
    (root / "a" / "notes.txt").write_text("x")
    old = []
    for parent, dirs, files in os.walk(root / "a", followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        old += [Path(parent) / f for f in sorted(files)
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    assert _images(root / "a", []) == old
