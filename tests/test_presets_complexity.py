"""Presets and analytic counts against Keras, the thesis's Table 5.1 and the rounding rules."""

import csv
import math
from pathlib import Path

import pytest

from latency_lab.network import complexity

from latency_lab.network import presets
from latency_lab.network.scaling import round4, round_filters_efficientnet

REFERENCE = Path(__file__).parent / "reference"

# Trainable parameters of keras.applications.EfficientNetB0/B1/B2(weights=None), 1000 classes
# (Keras's own figures; test_builders checks the live Keras models against the spec too).
KERAS_TRAINABLE = {"efficientnet-b0": 5_288_548, "efficientnet-b1": 7_794_184,
                   "efficientnet-b2": 9_109_994}


@pytest.mark.parametrize("name", sorted(KERAS_TRAINABLE))
def test_params_match_keras_applications(name):
    assert complexity.params(presets.get(name)) == KERAS_TRAINABLE[name]


def test_b0_macs_at_224_is_about_039_g():
    assert complexity.macs(presets.get("efficientnet-b0"), 224) == pytest.approx(0.39e9, rel=0.02)


def test_macs_grow_with_resolution_roughly_quadratically():
    b0 = presets.get("efficientnet-b0")
    ratio = complexity.macs(b0, 448) / complexity.macs(b0, 224)
    assert 3.8 < ratio < 4.05  # the classifier does not grow


def test_presets_match_thesis_table_5_1():
    rows = list(csv.DictReader(open(REFERENCE / "thesis_table_5_1_rbis_b1.csv")))
    body = [r for r in rows if r["stage"] not in ("stem", "head")]
    head = next(r for r in rows if r["stage"] == "head")
    for col, name in (("b0", "efficientnet-b0"), ("b1", "efficientnet-b1"),
                      ("rbis", "efficientnet-b0-rbis-b1")):
        spec = presets.get(name)
        assert list(spec.widths) == [int(r[f"{col}_channels"]) for r in body], name
        assert list(spec.depths) == [int(r[f"{col}_blocks"]) for r in body], name
        assert spec.head_width == int(head[f"{col}_channels"]), name
    assert presets.get("efficientnet-b0-rbis-b1").resolution == 256


def test_b2_is_b0_compound_scaled_with_official_rounding():
    b0, b2 = presets.get("efficientnet-b0"), presets.get("efficientnet-b2")
    assert list(b2.widths) == [round_filters_efficientnet(w * 1.1) for w in b0.widths]
    assert list(b2.depths) == [math.ceil(d * 1.2) for d in b0.depths]
    assert b2.head_width == 1408 and b2.resolution == 260


def test_efficientnet_rounding_rule():
    assert round_filters_efficientnet(35.2) == 32
    assert round_filters_efficientnet(44.0) == 48   # nearest multiple of 8, halves up
    assert round_filters_efficientnet(12.0) == 16   # 8 would be 33% below
    assert round_filters_efficientnet(3.0) == 8     # at least the divisor


def test_round4_matches_thesis_width_steps():
    assert round4(80 * 1.3) == 104 and round4(320 * 1.2) == 384 and round4(1.99 * 4) == 8


def test_s3nas_preset_as_published():
    s3 = presets.get("s3nas-b0")
    assert s3.stem.kernel == 7 and s3.stem.width == 32 and s3.activation == "relu"
    assert s3.widths == (32, 64, 128, 160, 256) and s3.depths == (4, 4, 3, 3, 4)
    assert all(st.se_ratio == 0 for st in s3.stages)
    assert [st.stride for st in s3.stages] == [2, 2, 2, 1, 2]


def test_layer_counts_add_up():
    b0 = presets.get("efficientnet-b0")
    layers = complexity.layer_counts(b0)
    assert len(layers) == 2 + sum(b0.depths) + 1
    assert sum(x.params for x in layers) == complexity.params(b0)


def test_unknown_preset_lists_the_known_ones():
    from latency_lab.network.spec import SpecError

    with pytest.raises(SpecError, match="efficientnet-b0"):
        presets.get("resnet50")
