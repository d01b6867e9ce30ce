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


def test_output_paths_are_checked_at_any_depth_before_work(tmp_path):
    from latency_lab.fileio import check_output_dir, check_output_file

    afile = tmp_path / "afile"
    afile.write_text("x")
    for deep in (afile / "o.csv", afile / "a" / "o.csv", afile / "a" / "b" / "c" / "o.csv"):
        with pytest.raises(FileWriteError, match="afile is a file, not a directory"):
            check_output_file(deep)
        with pytest.raises(FileWriteError, match="afile is a file, not a directory"):
            check_output_dir(deep)
    with pytest.raises(FileWriteError, match="is a directory"):
        check_output_file(tmp_path)
    with pytest.raises(FileWriteError, match="exists and is not a directory"):
        check_output_dir(afile)
    assert check_output_file(tmp_path / "new" / "deeper" / "o.csv")   # parents made on write
    assert check_output_dir(tmp_path / "new" / "dir")
    assert not (tmp_path / "new").exists()


def test_inputs_that_are_not_utf8_or_carry_a_bom(tmp_path):
    from latency_lab.fileio import FileReadError, read_text

    p = tmp_path / "in.csv"
    p.write_bytes("\ufefffingerprint,resolution\n".encode())
    assert read_text(p, "table").startswith("fingerprint")          # Excel's BOM dropped
    p.write_bytes(b"fingerprint\xff\xfe,resolution\n")
    with pytest.raises(FileReadError, match=r"table .*in.csv is not UTF-8 text \(byte 11"):
        read_text(p, "table")
    with pytest.raises(FileReadError, match="cannot read table"):
        read_text(tmp_path / "missing.csv", "table")


def test_json_inputs_refuse_nan_infinity_and_deep_nesting():
    from latency_lab.fileio import FileReadError, parse_json

    assert parse_json('{"a": [1, 2.5]}', "x") == {"a": [1, 2.5]}
    for text, message in (('{"a": Infinity}', "Infinity is not a JSON number"),
                          ('[-Infinity]', "-Infinity is not a JSON number"),
                          ('{"a": NaN}', "NaN is not a JSON number"),
                          ('{"a": ', "not valid JSON"),
                          ('{"a":' * 50_000, "not valid JSON|nested too deeply"),
                          ("[" * 50_000 + "]" * 50_000, "nested too deeply")):
        with pytest.raises(FileReadError, match=message):
            parse_json(text, "x")
