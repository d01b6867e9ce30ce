"""Net2Net transforms: every RBIS step of a network keeps its function exactly."""

from __future__ import annotations

import itertools

import pytest
import torch

from latency_lab.models.build_torch import build_torch
from latency_lab.training.net2net import ChannelMap, Net2NetError, max_deviation, transfer
from latency_lab.network.presets import get
from latency_lab.search.scaling import DEPTH, WIDTH, rbis_step


@pytest.fixture(autouse=True)
def _one_thread():
    """On this shared 2-core machine two torch threads made the B0 test 40x slower (OpenMP
    workers spin-waiting on cores other processes hold): 875 s against 19 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained_looking(spec, seed: int = 1):
    """A model with non-trivial batch-norm statistics and affine parameters, and logits of
    order 1, so that a wrong copy of any of them shows."""
    model = build_torch(spec, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in model.batch_norms():
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        model.head.classifier.weight.mul_(10)
    return model


def _steps(spec, stages):
    """Every one-stage and two-stage RBIS step of `spec` in both dimensions."""
    groups = [(a,) for a in stages] + list(itertools.combinations_with_replacement(stages, 2))
    n = len(spec.stages)
    for dim in (WIDTH, DEPTH):
        for g in groups:
            child, _ = rbis_step(spec, spec, (0,) * n, dim, g)
            if child.fingerprint != spec.fingerprint:    # 16 x 1.1 rounds back to 16
                yield f"{dim[0]}{'+'.join(map(str, g))}", child


def _assert_same_function(parent, child, resolution, tol=1e-5):
    x = torch.randn((3, 3, resolution, resolution), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits, features = parent(x), parent.forward_features(x)
        d_logits = (child(x) - logits).abs().max().item()
        d_features = (child.forward_features(x)[:, :features.shape[1]] - features).abs().max().item()
    assert logits.abs().max() > 0.5                # the comparison is not between zeros
    assert d_logits <= tol * max(1.0, logits.abs().max().item()), d_logits
    assert d_features <= tol * max(1.0, features.abs().max().item()), d_features


@pytest.mark.slow
def test_every_single_step_of_efficientnet_b0_preserves_the_function():
    """Width and depth step on each of the 7 stages and every pair: 69 children (a width
    step on stage 0, 16 -> 16, is no step). About 20 s."""
    b0 = get("efficientnet-b0")
    parent = _trained_looking(b0)
    seen = 0
    for seed, (label, child_spec) in enumerate(_steps(b0, range(7))):
        child, report = transfer(parent, child_spec, seed=seed)
        assert report.exact, (label, report.notes)
        assert (report.new_blocks if label[0] == "d" else report.widened), label
        _assert_same_function(parent, child, 64)
        seen += 1
    assert seen == 69


@pytest.mark.slow
def test_steps_of_the_tiny_preset_and_a_path_of_steps_preserve_the_function():
    tiny = get("mbconv-tiny")
    parent = _trained_looking(tiny)
    for seed, (label, child_spec) in enumerate(_steps(tiny, range(5))):
        child, report = transfer(parent, child_spec, seed=seed)
        assert report.exact, (label, report.notes)
        _assert_same_function(parent, child, 48)
    # an RBIS path: each child is the next parent, width steps counted from the baseline
    spec, counts, model = tiny, (0,) * 5, parent
    for dim, stages in [(WIDTH, (2, 3)), (DEPTH, (1, 3)), (WIDTH, (3, 3)), (DEPTH, (4, 4)),
                        (WIDTH, (1, 4))]:
        spec, counts = rbis_step(spec, tiny, counts, dim, stages)
        child, report = transfer(model, spec, seed=len(stages))
        assert report.exact
        _assert_same_function(parent, child, 40)
        model = child
    assert spec.widths == (24, 36, 52, 84, 104) and spec.depths == (1, 3, 2, 3, 3)


def test_a_width_step_that_adds_a_residual_link_is_reported_inexact():
    """mbconv-tiny's stage 4 (96 wide, stride 1) gets a residual link once stage 3 reaches 96."""
    tiny = get("mbconv-tiny")
    spec, counts = tiny, (0,) * 5
    while spec.stages[3].width < 96:
        spec, counts = rbis_step(spec, tiny, counts, WIDTH, (3,))
    assert spec.stages[3].width == 96
    child, report = transfer(_trained_looking(tiny), spec)
    assert not report.exact
    assert report.notes == ["s4.b0: the residual link appears (64->96 becomes 96->96 channels)"]
    assert max_deviation(_trained_looking(tiny), child, 48) > 1e-3


def test_a_new_block_is_an_identity_in_train_mode_too_and_copies_learn_apart():
    tiny = get("mbconv-tiny")
    parent = _trained_looking(tiny)
    wide, _ = rbis_step(tiny, tiny, (0,) * 5, WIDTH, (3, 3))
    deep, _ = rbis_step(wide, tiny, (2,) * 5, DEPTH, (3,))
    child, report = transfer(parent, deep, seed=3)
    assert report.new_blocks == ["s3.b2"]
    x = torch.randn((4, 76, 6, 6))          # stage 3: 64 -> 72 -> 76 wide
    block = child.stages[3][2].train()
    with torch.no_grad():
        assert torch.equal(block(x), x)
    # the widened stream's new channels are copies (equal producer rows) that learn apart
    # after one SGD step, because their consumers' fractions differ
    rows = lambda: child.stages[3][0].project.conv.weight[:, :, 0, 0].detach().clone()  # noqa: E731
    before = rows()
    copies = [(a, b) for b in range(64, 76) for a in range(64) if torch.equal(before[a], before[b])]
    assert len(copies) == 12
    child.train()
    opt = torch.optim.SGD(child.parameters(), lr=0.1)
    child(torch.randn((8, 3, 48, 48))).logsumexp(1).mean().backward()
    opt.step()
    after = rows()
    assert all(not torch.allclose(after[a], after[b]) for a, b in copies)


def test_channel_maps_split_exactly_and_refuse_to_narrow():
    import numpy as np

    m = ChannelMap.widen(5, 12, np.random.default_rng(0))
    assert m.src[:5].tolist() == [0, 1, 2, 3, 4]
    sums = torch.zeros(5).index_add_(0, m.src, m.frac)
    assert torch.allclose(sums, torch.ones(5))
    assert len(set(m.frac.tolist())) > 2                   # not an even split
    with pytest.raises(Net2NetError, match="cannot narrow"):
        ChannelMap.widen(8, 4, np.random.default_rng(0))
    tiny = get("mbconv-tiny")
    wide, _ = rbis_step(tiny, tiny, (0,) * 5, WIDTH, (2,))
    with pytest.raises(Net2NetError, match="stage 2 is narrower or shallower"):
        transfer(build_torch(wide), tiny)
