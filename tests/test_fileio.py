"""Files are written whole or not at all (latency_lab.fileio)."""

import os
import stat

import pytest

from latency_lab.fileio import FileWriteError, atomic_path, write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sweep.csv"
    target.write_text("old,complete\n1,2\n")
    with pytest.raises(RuntimeError, match="writer broke"):
        with atomic_path(target) as tmp:
            tmp.write_text("new,half")
            raise RuntimeError("writer broke")
    assert target.read_text() == "old,complete\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv"]


def test_write_replaces_whole_and_keeps_an_ordinary_mode(tmp_path):
    target = tmp_path / "deep" / "er" / "result.json"
    write_atomic(target, '{"a": 1}')
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    mode = stat.S_IMODE(target.stat().st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask   # not mkstemp's 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_the_temporary_keeps_the_suffix_for_writers_that_pick_the_format_by_name(tmp_path):
    with atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")


def test_os_errors_are_one_line_user_errors(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(FileWriteError, match=r"cannot write .*afile/a/b/o.csv"):
        write_atomic(blocker / "a" / "b" / "o.csv", "x")
