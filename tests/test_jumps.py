"""Tests of the jump detector (latency_lab.jumps), its plot and the `latency-lab jumps` command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latency_lab import jumps as J
from latency_lab.cli import main

GRID = np.arange(160, 401, 4)


def sweep(latency, ci_halfwidth=None) -> pd.DataFrame:
    frame = pd.DataFrame({"resolution": GRID[: len(latency)], "latency_ms": latency})
    if ci_halfwidth is not None:
        frame["ci_low_ms"] = frame["latency_ms"] - ci_halfwidth
        frame["ci_high_ms"] = frame["latency_ms"] + ci_halfwidth
    return frame


def stepped(steps: dict[int, float], quadratic=False, kinks=()) -> np.ndarray:
    """A trend with level steps after the given resolutions (resolution -> ms, negative = drop)."""
    r = GRID.astype(float)
    y = 20 + 0.004 * r ** 2 if quadratic else 50 + 0.5 * r
    for at, extra_slope in kinks:
        y = y + extra_slope * np.maximum(0, r - at)
    for at, size in steps.items():
        y = y + size * (r > at)
    return y


def noisy(y, rel=0.005, seed=0):
    return y + np.random.default_rng(seed).normal(0, rel, len(y)) * y


def befores(frame_or_result, col="jumps"):
    res = frame_or_result
    if not isinstance(res, J.JumpResult):
        res = J.detect(res)
    return list(getattr(res, col)["resolution_before"])


@pytest.mark.parametrize("quadratic", [False, True])
def test_smooth_noiseless_curves_have_no_jumps(quadratic):
    res = J.detect(sweep(stepped({}, quadratic=quadratic)))
    assert res.jumps.empty and res.drops.empty


def test_slope_change_is_not_a_jump():
    y = stepped({}, kinks=[(250, 2.0), (330, -1.5)])
    assert J.detect(sweep(y)).jumps.empty
    assert J.detect(sweep(noisy(y, 0.01, seed=3))).jumps.empty


def test_noiseless_steps_recovered_exactly():
    frame = sweep(stepped({220: 12.0, 300: 20.0, 360: 15.0}, quadratic=True))
    res = J.detect(frame)
    assert befores(res) == [220, 300, 360]
    assert list(res.jumps["resolution_after"]) == [224, 304, 364]
    assert np.allclose(res.jumps["jump_ms"], [12.0, 20.0, 15.0], rtol=0.02)


def test_noisy_steps_recovered_and_single_outlier_ignored():
    y = noisy(stepped({220: 12.0, 300: 20.0}, quadratic=True), 0.005, seed=1)
    y[GRID == 340] *= 1.15              # one slow point is not a jump
    res = J.detect(sweep(y))
    assert befores(res) == [220, 300] and res.drops.empty
    assert list(res.curve.resolution[res.outliers]) == [340]


def test_downward_steps_reported_separately_and_not_candidates():
    y = stepped({220: 15.0, 300: -20.0})
    res = J.detect(sweep(y))
    assert befores(res) == [220]
    assert befores(res, "drops") == [300]
    assert res.drops["jump_ms"].iloc[0] < 0
    cands = J.candidates(res)
    assert 300 not in set(cands["resolution"])


@pytest.mark.parametrize("scale,shift", [(1000.0, 0.0), (0.001, 0.0), (1.0, 500.0), (3.0, -20.0)])
def test_invariant_to_scaling_and_shifting_latency(scale, shift):
    y = noisy(stepped({200: 10.0, 280: 8.0, 340: -9.0}, quadratic=True), 0.01, seed=4)
    base = J.detect(sweep(y))
    moved = J.detect(sweep(y * scale + shift))
    assert befores(base) == befores(moved) and befores(base, "drops") == befores(moved, "drops")
    assert np.allclose(base.jumps["z"], moved.jumps["z"], rtol=1e-6)
    assert np.allclose(base.jumps["jump_ms"] * scale, moved.jumps["jump_ms"], rtol=1e-6)
    # with CIs too
    ci = 0.01 * y
    b2 = J.detect(sweep(y, ci))
    m2 = J.detect(sweep(y * scale + shift, ci * scale))
    assert befores(b2) == befores(m2)


def test_cis_are_used_and_scale_the_noise():
    y = noisy(stepped({240: 10.0}, quadratic=True), 0.005, seed=2)
    res = J.detect(sweep(y, 0.005 * y * 1.96))
    assert res.noise_source == "CIs"
    assert befores(res) == [240]
    assert J.detect(sweep(y, 0.005 * y * 1.96), use_ci=False).noise_source.startswith("curve")


def test_candidates_neighbours_and_clipping_at_the_ends():
    y = stepped({168: 10.0, 388: 12.0})         # jumps 2 and 3 points from the ends
    res = J.detect(sweep(y))
    assert befores(res) == [168, 388]
    cands = J.candidates(res, neighbours=3)
    got = list(cands["resolution"])
    assert got == [160, 164, 168, 172, 176, 180, 376, 380, 384, 388, 392, 396, 400]
    row = cands.set_index("resolution").loc[168]
    assert row["role"] == "before-jump" and row["offset"] == 0
    assert "before the" in row["reason"] and "jump to 172" in row["reason"]
    assert (cands.set_index("resolution").loc[[164, 172], "role"] == "neighbour").all()
    assert list(J.candidates(res, neighbours=0)["resolution"]) == [168, 388]


def test_candidates_latency_window():
    res = J.detect(sweep(stepped({220: 10.0, 320: 12.0})))
    lat = dict(zip(GRID, res.curve.latency_ms))
    cands = J.candidates(res, neighbours=1, max_latency_ms=lat[300])
    assert list(cands["resolution"]) == [216, 220, 224]
    cands = J.candidates(res, neighbours=1, min_latency_ms=lat[300])
    assert list(cands["resolution"]) == [316, 320, 324]


def test_unsorted_duplicates_and_gaps_handled():
    y = stepped({240: 12.0}, quadratic=True)
    frame = sweep(y).drop(index=[5, 6, 30, 31, 32]).sample(frac=1.0, random_state=0)
    frame = pd.concat([frame, frame.iloc[:3]])          # duplicate rows
    res = J.detect(frame)
    assert befores(res) == [240]
    assert any("sorted" in n for n in res.notes) and any("duplicate" in n for n in res.notes)
    assert np.all(np.diff(res.curve.resolution) > 0)


def test_duplicates_merged_by_median_and_widest_ci():
    frame = pd.DataFrame({"resolution": [160, 160, 160] + list(range(164, 200, 4)),
                          "latency_ms": [10.0, 11.0, 30.0] + [11.0 + i for i in range(9)],
                          "ci_low_ms": [9.0, 10.0, 29.0] + [10.0 + i for i in range(9)],
                          "ci_high_ms": [11.0, 12.5, 31.0] + [12.0 + i for i in range(9)]})
    curve = J.prepare_curve(frame)
    assert curve.n == 10 and curve.latency_ms[0] == 11.0
    assert curve.ci_low_ms[0] == 9.0 and curve.ci_high_ms[0] == 31.0


@pytest.mark.parametrize("frame,message", [
    (pd.DataFrame({"resolution": GRID[:10]}), "no column latency_ms"),
    (pd.DataFrame({"resolution": GRID[:10], "latency_ms": ["1.0"] * 9 + ["fast"]}),
     "row 10: latency_ms 'fast' is not a finite number"),
    (pd.DataFrame({"resolution": GRID[:7], "latency_ms": np.arange(7.0) + 1}),
     "at least 8 distinct resolutions"),
    (pd.DataFrame({"resolution": [160] * 10, "latency_ms": np.arange(10.0) + 1}),
     "got 1"),
    (pd.DataFrame({"resolution": np.append(GRID[:9], 224.5), "latency_ms": np.arange(10.0) + 1}),
     "not a positive integer"),
    (pd.DataFrame({"resolution": GRID[:10], "latency_ms": np.arange(10.0) - 1}),
     "is not positive"),
])
def test_malformed_input_refused(frame, message):
    with pytest.raises(J.JumpInputError, match=message):
        J.detect(frame)


def test_analyze_sweep_writes_reports_and_plot(tmp_path):
    y = noisy(stepped({220: 12.0, 300: -15.0}, quadratic=True), 0.004, seed=5)
    frame = sweep(y, 0.004 * y * 1.96).assign(network="efficientnet-b0", device="cpu")
    out = tmp_path / "an"
    analysis = J.analyze_sweep(frame, out, neighbours=2)
    jumps = pd.read_csv(out / "jumps.csv")
    for col in ("resolution_before", "resolution_after", "latency_before_ms", "latency_after_ms",
                "jump_ms", "jump_pct", "z"):
        assert col in jumps.columns
    assert list(jumps["resolution_before"]) == [220]
    assert list(pd.read_csv(out / "drops.csv")["resolution_before"]) == [300]
    cands = pd.read_csv(out / "candidates.csv")
    assert list(cands["resolution"]) == [212, 216, 220, 224, 228]
    assert list(cands["resolution"]) == list(analysis.candidates["resolution"])
    png = (out / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_cli_jumps_writes_files(tmp_path, capsys):
    y = stepped({240: 10.0})
    src = tmp_path / "sweep.csv"
    sweep(y).to_csv(src, index=False)
    assert main(["jumps", str(src), "--out", str(tmp_path / "out"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "jump  240 -> 244" in out and "candidates: 236, 240, 244" in out
    assert (tmp_path / "out" / "candidates.csv").exists()
    assert not (tmp_path / "out" / "sweep.png").exists()


@pytest.mark.parametrize("content,needle", [
    ("resolution,latency_ms\n160,1\n164,2\n", "at least 8"),
    ("resolution,latency_ms\n" + "".join(f"{r},x\n" for r in range(160, 200, 4)), "not a finite"),
    ("res,lat\n1,2\n", "no column resolution"),
])
def test_cli_jumps_malformed_input_is_one_line_exit_2(tmp_path, capsys, content, needle):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    assert main(["jumps", str(src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err


def test_cli_jumps_missing_file(tmp_path, capsys):
    assert main(["jumps", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_default_threshold_matches_library():
    import inspect

    from latency_lab.cli_jumps import jumps_command

    assert inspect.signature(jumps_command).parameters["z_min"].default.default == J.DEFAULT_Z_MIN


def test_result_prints_a_one_line_summary():
    res = J.detect(sweep(stepped({220: 15.0, 300: -20.0})))
    text = str(res)
    assert text.startswith("jumps: 220->224 +") and "drops: 300->304 -" in text
    assert "\n" not in text
