"""Outputs never replace what is not theirs (issue 25): an atomic write goes only over a regular
file or nothing; a device node, a FIFO, a socket or a directory is refused in one line before
any work; a link is written through; this process's standard output is streamed to.

Every special file here is made in the test's own folder (mknod needs root: CI is root, and
the node tests are skipped elsewhere). None of them is ever a real device's node, and no test
names /dev/stdout, /dev/null or /dev/full: standard output is reached through a link to
/proc/self/fd/1 made in the temporary folder, so a regression replaces that link, not /dev's.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from latency_lab.cli.app import main
from latency_lab.fileio import (FileWriteError, atomic_path, check_output_dir, check_output_file,
                                safe_name, write_atomic)


def _node(path) -> None:
    """A character device node with the null device's numbers (harmless if written), or skip."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod of a character device needs root (CI runs as root)")


@pytest.fixture
def specials(tmp_path):
    """{name: (path, file type)} of a FIFO, a socket and links to them, in tmp_path."""
    os.mkfifo(tmp_path / "fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    s.close()
    (tmp_path / "adir").mkdir()
    os.symlink("fifo", tmp_path / "link_fifo")
    os.symlink("adir", tmp_path / "link_dir")
    return {"fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK, "link_fifo": stat.S_IFLNK,
            "link_dir": stat.S_IFLNK}


def _kind(path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.mark.parametrize("name, message", [
    ("fifo", "is a FIFO"), ("sock", "is a socket"),
    ("link_fifo", r"is a FIFO \(named pipe\) \(a link to .*fifo\)"),
    ("link_dir", r"is a directory \(a link to .*adir\)"),
])
def test_special_files_are_refused_before_work_and_never_replaced(tmp_path, specials, name,
                                                                  message):
    path = tmp_path / name
    before = os.lstat(path)
    with pytest.raises(FileWriteError, match=message):
        check_output_file(path, "--out")
    with pytest.raises(FileWriteError, match=message):   # the write itself refuses too
        write_atomic(path, "data")
    after = os.lstat(path)
    assert (after.st_ino, _kind(path)) == (before.st_ino, specials[name])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_device_node_is_refused_and_stays_a_node(tmp_path):
    node = tmp_path / "node"
    _node(node)
    os.symlink("node", tmp_path / "link_node")
    for name in ("node", "link_node"):
        with pytest.raises(FileWriteError, match="is a character device"):
            check_output_file(tmp_path / name)
        with pytest.raises(FileWriteError, match="never a device or a pipe"):
            with atomic_path(tmp_path / name) as tmp:
                tmp.write_text("x")
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.lstat(node).st_rdev == os.makedev(1, 3)


def test_a_node_made_between_the_check_and_the_rename_is_not_replaced(tmp_path):
    """The write checks again just before its rename: a FIFO that appeared meanwhile stays."""
    out = tmp_path / "o.csv"
    with pytest.raises(FileWriteError, match="is a FIFO"):
        with atomic_path(out) as tmp:
            tmp.write_text("x")
            os.mkfifo(out)
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["o.csv"]


def test_a_link_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    os.symlink("real.csv", tmp_path / "link.csv")
    os.symlink("new.csv", tmp_path / "dangling.csv")
    os.symlink("nowhere/new.csv", tmp_path / "into_nothing.csv")
    assert check_output_file(tmp_path / "link.csv") == tmp_path / "link.csv"
    write_atomic(tmp_path / "link.csv", "new\n")
    write_atomic(tmp_path / "dangling.csv", "created\n")
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_text() == "new\n"
    assert (tmp_path / "dangling.csv").is_symlink()
    assert (tmp_path / "new.csv").read_text() == "created\n"
    with pytest.raises(FileWriteError, match="in a folder that does not exist"):
        check_output_file(tmp_path / "into_nothing.csv")
    os.symlink("loop_b", tmp_path / "loop_a")
    os.symlink("loop_a", tmp_path / "loop_b")
    with pytest.raises(FileWriteError, match="cannot write output .*loop_a"):
        check_output_file(tmp_path / "loop_a")


def test_standard_output_is_streamed_not_replaced(tmp_path, tiny):
    """A link to /proc/self/fd/1 (what /dev/stdout is) in the test's folder: the model goes to
    the pipe, the 'wrote' line to stderr, and the link is still a link."""
    os.symlink("/proc/self/fd/1", tmp_path / "stdout")
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    code = ("import sys; from latency_lab.cli.app import main; "
            f"sys.exit(main(['network', 'export', {str(tmp_path / 'tiny.json')!r}, '--format', "
            f"'tflite', '--out', {str(tmp_path / 'stdout')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout[4:8] == b"TFL3" and b"wrote" not in p.stdout   # the model, and only it
    assert b"wrote" in p.stderr
    assert (tmp_path / "stdout").is_symlink()


@pytest.mark.parametrize("args", [
    ["table", "export", "{x}", "--store", "{s}"], ["accuracy", "export", "{x}", "--store", "{s}"],
    ["sweep", "--device", "table:{t}", "--out", "{x}"],
    ["network", "export", "efficientnet-b0", "--format", "tflite", "--out", "{x}"],
    ["search", "--budget-ms", "9", "--latency", "py:m:f", "--accuracy", "py:m:f", "--out", "{x}"],
])
def test_commands_refuse_a_fifo_in_one_line(tmp_path, capsys, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "m.py").write_text("def f(net):\n    return 5.0\n")
    argv = [a.format(x=str(tmp_path / "fifo"), t=str(tmp_path / "t.csv"),
                      s=str(tmp_path / "s.sqlite")) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FIFO" in err[0], err
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    assert not (tmp_path / "s.sqlite").exists()


def test_output_folders_refuse_special_files(tmp_path, specials):
    for name in ("fifo", "sock"):
        with pytest.raises(FileWriteError, match="not a directory"):
            check_output_dir(tmp_path / name)
    assert check_output_dir(tmp_path / "link_dir") == tmp_path / "link_dir"   # a folder's link


@pytest.mark.parametrize("name, safe", [
    ("../../x", "__.._x"), ("a/b/net", "a_b_net"), ("..", "_"), (".", "_"), ("", "_"),
    (".hidden", "_hidden"), ("efficientnet-b0", "efficientnet-b0"), ("r\u00e9seau 2", "r_seau_2"),
    ("x" * 300, "x" * 100), ("a\\b:c", "a_b_c"),
])
def test_one_sanitiser_for_names_in_file_names(name, safe):
    assert safe_name(name) == safe
    assert "/" not in safe_name(name) and safe_name(name) not in (".", "..")
