"""The converted-model cache: LRU pruning by size, the automatic cap, `latency-lab cache`."""

import os
import time

from latency_lab.models import cache as model_cache
from latency_lab.cli.app import main


def _model(root, fp, mb, age_h):
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{fp}.tflite").write_bytes(b"x" * int(mb * 2 ** 20))
    (root / f"{fp}.json").write_text('{"name": "net-%s"}' % fp)
    t = time.time() - age_h * 3600
    for f in (root / f"{fp}.tflite", root / f"{fp}.json"):
        os.utime(f, (t, t))


def test_prune_removes_least_recently_used_first_and_keeps_what_this_process_used(tmp_path):
    root = tmp_path / "models"
    for fp, age in (("old", 5), ("mid", 3), ("new", 1)):
        _model(root, fp, 1.0, age)
    assert [e.fingerprint for e in model_cache.entries(root)] == ["old", "mid", "new"]
    model_cache.touch(root / "old.tflite")        # used now: newest, and kept by the cap
    assert model_cache.entries(root)[-1].fingerprint == "old"
    removed = model_cache.prune(int(1.5 * 2 ** 20), keep_used=True, root=root)
    assert [e.fingerprint for e in removed] == ["mid", "new"]
    assert [e.fingerprint for e in model_cache.entries(root)] == ["old"]
    assert not (root / "mid.json").exists()


def test_cache_commands_show_and_prune(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("LATENCY_LAB_CACHE_MAX_MB", "1.5")
    for fp, age in (("aaaa", 5), ("bbbb", 3), ("cccc", 1)):
        _model(tmp_path / "models", fp, 1.0, age)
    assert main(["cache", "show"]) == 0
    out = capsys.readouterr().out
    assert "3 models, 3.0 MB" in out and "cap 2 MB" in out and "net-cccc" in out
    assert main(["cache", "prune"]) == 0         # down to the cap: the two oldest go
    assert "removed 2 models (2.0 MB)" in capsys.readouterr().out
    assert [e.fingerprint for e in model_cache.entries()] == ["cccc"]
    assert main(["cache", "prune", "--all"]) == 0
    assert model_cache.entries() == []
    monkeypatch.setenv("LATENCY_LAB_CACHE_MAX_MB", "lots")
    assert main(["cache", "show"]) == 2
    assert "not a number of MB" in capsys.readouterr().err
