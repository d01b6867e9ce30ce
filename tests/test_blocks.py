"""The one walk over a network's blocks and the layers of a block."""

import math

import pytest

from latency_lab.network import complexity

from latency_lab.network import presets
from latency_lab.network.blocks import BlockModel, network_blocks, stage_sites


@pytest.mark.parametrize("name", presets.names())
def test_walk_follows_the_spec(name):
    spec = presets.get(name)
    sites = network_blocks(spec, 224)
    assert [s.where for s in sites[:2]] == ["stem", "s0.b0"] and sites[-1].where == "head"
    assert [len(g) for g in stage_sites(sites)] == list(spec.depths)
    for prev, site in zip(sites, sites[1:]):
        assert site.size == prev.size_out and site.block.c_in == prev.block.c_out
    for i, group in enumerate(stage_sites(sites)):
        assert [(s.stage, s.index) for s in group] == [(i, j) for j in range(spec.stages[i].depth)]
        assert all(s.block.c_out == spec.stages[i].width for s in group)
    stride = spec.stem.stride * math.prod(b.stride for st in spec.stages for b in st.blocks)
    assert sites[-1].size == math.ceil(224 / stride)   # 7 for the EfficientNets (stride 32)


def test_walk_defaults_to_the_spec_resolution(tiny):
    assert network_blocks(tiny) == network_blocks(tiny, tiny.resolution)
    assert [s.size for s in network_blocks(tiny, 100)] == [100, 50, 50, 25, 25]


def test_mbconv_layers_follow_expansion_se_and_residual():
    plain = BlockModel("mbconv", 16, 16, 3, 1, 1, 0, "relu")
    assert [l.role for l in plain.layers()] == ["dw", "project"] and plain.residual
    full = BlockModel("mbconv", 16, 24, 5, 6, 2, 4, "swish")
    assert [l.role for l in full.layers()] == ["expand", "dw", "se", "project"]
    assert not full.residual and full.c_mid == 96
    assert [(l.op, l.c_in, l.c_out, l.kernel, l.stride, l.act) for l in full.layers()] == [
        ("conv", 16, 96, 1, 1, True), ("dwconv", 96, 96, 5, 2, True), ("se", 96, 96, 1, 1, True),
        ("conv", 96, 24, 1, 1, False)]
    # MACs at input 32: expand at 32x32, the rest at 16x16, SE without spatial size
    assert full.macs(32) == 16 * 96 * 32 ** 2 + 25 * 96 * 16 ** 2 + 2 * 96 * 4 + 96 * 24 * 16 ** 2


def test_block_counts_add_up_to_the_network(tiny):
    sites = network_blocks(tiny, 96)
    assert sum(s.block.params for s in sites) == complexity.params(tiny)
    assert sum(s.block.macs(s.size) for s in sites) == complexity.macs(tiny, 96)
