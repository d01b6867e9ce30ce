"""RBIS steps (width rule, Table 5.1), baseline families and scale_to_budget."""

from __future__ import annotations

import math

import pytest

from latency_lab.network import presets
from latency_lab.network.scaling import round_filters_pycls, round_repeats_pycls, round_resolution
from latency_lab.search.scaling import (DEPTH, FAMILIES, WIDTH, BudgetError, family_grid,
                            pycls_scaling_factors, rbis_step, scale_to_budget)
from latency_lab.network.complexity import macs

B0 = presets.get("efficientnet-b0")
ZERO = (0,) * 7


def test_width_rule_reproduces_table_5_1():
    # Stage 3: 80 -> 104 after three width steps; stage 6: 320 -> 384 after two.
    spec, counts = rbis_step(B0, B0, ZERO, WIDTH, (3, 6))
    assert spec.widths[3] == 88 and spec.widths[6] == 352
    spec, counts = rbis_step(spec, B0, counts, WIDTH, (3, 3))
    assert spec.widths[3] == 104 and counts[3] == 3
    spec, counts = rbis_step(spec, B0, counts, WIDTH, (6,))
    assert spec.widths[6] == 384 and counts[6] == 2
    table_5_1 = presets.get("efficientnet-b0-rbis-b1")
    assert spec.widths[3] == table_5_1.widths[3] and spec.widths[6] == table_5_1.widths[6]


def test_width_steps_use_baseline_width_not_compounding():
    # 40 -> round4(44) = 44 -> round4(48) = 48 -> round4(52) = 52: +10% of the *baseline* each.
    spec, counts = B0, ZERO
    seen = []
    for _ in range(3):
        spec, counts = rbis_step(spec, B0, counts, WIDTH, (2,))
        seen.append(spec.widths[2])
    assert seen == [44, 48, 52]
    # 16 * 1.1 = 17.6 rounds back to 16; the step is counted all the same.
    spec, counts = rbis_step(B0, B0, ZERO, WIDTH, (0,))
    assert spec.widths[0] == 16 and counts[0] == 1
    spec, counts = rbis_step(spec, B0, counts, WIDTH, (0,))
    assert spec.widths[0] == 20   # round4(16 * 1.2 = 19.2)


def test_depth_step_appends_copy_of_last_block_stride_1():
    spec, counts = rbis_step(B0, B0, ZERO, DEPTH, (1, 1))
    stage = spec.stages[1]
    assert stage.depth == 4 and counts == ZERO
    assert stage.blocks[0] == B0.stages[1].blocks[0] and stage.blocks[0].stride == 2
    assert all(b.stride == 1 and b.kernel == B0.stages[1].blocks[-1].kernel
               for b in stage.blocks[2:])
    assert spec.widths == B0.widths


def test_pycls_factors_match_their_exponents():
    for s in (1.5, 2.0, 4.0):
        d, w, r = pycls_scaling_factors({"d": 1, "w": 8, "r": 1}, s)
        assert d == pytest.approx(s ** 0.1) and w == pytest.approx(s ** 0.4)
        assert r == pytest.approx(s ** 0.05) and d * w * w * r * r == pytest.approx(s)
        d, w, r = pycls_scaling_factors({"d": 4, "r": 1}, s)
        assert w == 1.0 and d * r * r == pytest.approx(s) and d == pytest.approx(s ** 0.8)


def test_pycls_rounding():
    assert round_filters_pycls(20) == 16 and round_filters_pycls(28) == 32
    assert round_filters_pycls(3) == 8
    assert round_repeats_pycls(4, 1.07) == 4 and round_repeats_pycls(1, 0.2) == 1
    assert round_resolution(224 * 1.15) == 256 and round_resolution(230) == 232


def test_families_start_at_the_baseline_and_grow():
    for family in FAMILIES.values():
        assert family.network(B0, 0).fingerprint == B0.fingerprint
        assert family.network(B0, 0).resolution == 224
        prev = family.network(B0, 0)
        for x in (0.5, 1.0, 2.0):
            s = family.network(B0, x)
            assert all(a >= b for a, b in zip(s.widths, prev.widths))
            assert all(a >= b for a, b in zip(s.depths, prev.depths))
            assert s.resolution >= prev.resolution and s.resolution % 4 == 0
            assert macs(s, s.resolution) > macs(prev, prev.resolution)
            prev = s
    assert FAMILIES["rs"].network(B0, 2).widths == B0.widths
    compound = FAMILIES["compound"].network(B0, 1)
    assert compound.resolution == 256 and compound.head_width == 1408   # round_filters(1408)
    assert compound.depths == tuple(math.ceil(1.2 * d) for d in B0.depths)


@pytest.mark.slow
def test_scale_to_budget_is_the_largest_within_budget():
    lat = lambda s, r: macs(s, r) / 1e6  # noqa: E731 monotone along every family
    for method, family in FAMILIES.items():
        budget = 1.6 * lat(B0, 224)
        res = scale_to_budget(family, B0, budget, lat)
        grid = family_grid(family, B0)
        i = [s.fingerprint + str(s.resolution) for _, s in grid].index(
            res.spec.fingerprint + str(res.spec.resolution))
        assert res.latency_ms <= budget < lat(grid[i + 1][1], grid[i + 1][1].resolution)
        assert len(res.probes) < 30, method   # bisection, not a scan of hundreds
    with pytest.raises(BudgetError, match="below the baseline"):
        scale_to_budget(FAMILIES["fast"], B0, 0.5 * lat(B0, 224), lat)
