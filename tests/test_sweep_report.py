"""The jump report on a curve too noisy to judge, and the sweep figure's title."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latency_lab.sweeps.report import NOISY_CI_PCT, analyze_sweep, noise_verdict, sweep_title


def _sweep(half_pct: float, rounds: int = 3) -> pd.DataFrame:
    """A B0-like curve with one +8% step, measured in `rounds` rounds with CIs of +-half_pct;
    the medians scattered as widely as such CIs allow (seeded)."""
    rng = np.random.default_rng(7)
    r = np.arange(160, 260, 4)
    true = 6 + 0.06 * (r - 160) + np.where(r > 208, 1.0, 0.0)
    lat = true * (1 + half_pct / 100 / 2 * rng.standard_normal(len(r)))
    return pd.DataFrame({"resolution": r, "latency_ms": lat,
                         "ci_low_ms": lat * (1 - half_pct / 100),
                         "ci_high_ms": lat * (1 + half_pct / 100), "n_rounds": rounds,
                         "network": "efficientnet-b0", "device": "cpu"})


@pytest.mark.slow
def test_a_curve_with_52pct_cis_is_too_noisy_to_judge(tmp_path):
    frame = _sweep(52.0)
    verdict = noise_verdict(frame)
    assert verdict.startswith("too noisy to judge") and "+-52.0%" in verdict
    a = analyze_sweep(frame, tmp_path / "j")
    assert a.verdict == verdict
    assert len(a.jumps) == 0 and not a.candidates["kept"].any() if len(a.candidates) else True
    assert pd.read_csv(tmp_path / "j" / "jumps.csv").empty
    assert (tmp_path / "j" / "sweep.png").stat().st_size > 10_000


@pytest.mark.slow
def test_between_10_and_12pct_only_the_lattice_detector_judges(tmp_path):
    """The lattice detector found real steps on busy curves at +-10.6% (main's busy benchmark);
    the whole-curve model reported false ones there, so it stays silenced at 10%."""
    from latency_lab.network.presets import load_network

    frame = _sweep(11.0)
    lattice = analyze_sweep(frame, tmp_path / "l", network=load_network("efficientnet-b0"),
                            plot=False)
    assert lattice.result.method == "lattice" and lattice.verdict == ""
    model = analyze_sweep(frame, tmp_path / "m", plot=False)
    assert model.result.method != "lattice" and model.verdict.startswith("too noisy")
    assert len(model.jumps) == 0


def test_a_curve_with_narrow_cis_is_judged():
    assert noise_verdict(_sweep(1.0)) == ""
    assert noise_verdict(_sweep(NOISY_CI_PCT * 0.9)) == ""
    assert noise_verdict(_sweep(1.0).drop(columns=["ci_low_ms"])) == ""   # no CIs: no verdict


def test_the_title_names_network_device_and_date():
    title = sweep_title(_sweep(1.0), "2026-11-20")
    assert "efficientnet-b0" in title and "cpu" in title and "2026-11-20" in title
