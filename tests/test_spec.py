"""Network specs: JSON round trip, fingerprint identity, validation."""

import json

import pytest

from latency_lab import presets
from latency_lab.spec import NetworkSpec, SpecError


def test_json_round_trip_every_preset():
    for name in presets.names():
        spec = presets.get(name)
        again = NetworkSpec.from_json(spec.to_json())
        assert again == spec
        assert again.fingerprint == spec.fingerprint


def test_json_has_the_keys_other_tools_read():
    d = json.loads(presets.get("efficientnet-b0").to_json())
    assert {"resolution", "stem", "head", "stages"} <= set(d)
    assert d["resolution"] == 224
    assert [s["width"] for s in d["stages"]] == [16, 24, 40, 80, 112, 192, 320]
    assert [s["depth"] for s in d["stages"]] == [1, 2, 2, 3, 3, 4, 1]


def test_fingerprint_ignores_name_and_resolution_only():
    b0 = presets.get("efficientnet-b0")
    d = b0.to_dict()
    d["name"], d["resolution"] = "renamed", 300
    assert NetworkSpec.from_dict(d).fingerprint == b0.fingerprint
    for change in (("head", {"width": 1288}), ("num_classes", 10), ("activation", "relu")):
        d2 = b0.to_dict()
        d2[change[0]] = change[1]
        assert NetworkSpec.from_dict(d2).fingerprint != b0.fingerprint, change
    d3 = b0.to_dict()
    d3["stages"][3]["blocks"][1]["kernel"] = 5
    assert NetworkSpec.from_dict(d3).fingerprint != b0.fingerprint


def test_fingerprint_does_not_depend_on_number_spelling_or_key_order():
    b0 = presets.get("efficientnet-b0")
    d = b0.to_dict()
    for s in d["stages"]:
        s["expansion"] = float(s["expansion"])
        for b in s["blocks"]:
            b["expansion"] = float(b["expansion"])
    shuffled = json.loads(json.dumps(dict(reversed(list(d.items())))))
    assert NetworkSpec.from_dict(shuffled).fingerprint == b0.fingerprint


def test_stage_without_blocks_expands_to_depth_copies(tiny):
    st = tiny.stages[1]
    assert st.depth == 2 and [b.stride for b in st.blocks] == [2, 1]
    assert {b.kernel for b in st.blocks} == {5}


def test_blocks_may_vary_inside_a_stage():
    s3 = presets.get("s3nas-b0")
    assert [b.kernel for b in s3.stages[2].blocks] == [5, 3, 3]
    assert [b.expansion for b in s3.stages[3].blocks] == [4, 2, 2]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("stages"), "lacks key"),
    (lambda d: d["stages"][0].update(depth=0), "depth"),
    (lambda d: d["stages"][1]["blocks"][1].update(stride=2), "first block"),
    (lambda d: d["stages"][0]["blocks"][0].update(kernel=4), "kernel"),
    (lambda d: d.update(activation="gelu"), "activation"),
    (lambda d: d.update(resolution=8), "resolution"),
    (lambda d: d["stages"][1].update(depth=5), "depth 5 but 2 blocks"),
    (lambda d: d["stem"].pop("width"), "width"),
])
def test_invalid_specs_are_refused(tiny, mutate, message):
    d = json.loads(tiny.to_json())
    mutate(d)
    with pytest.raises(SpecError, match=message):
        NetworkSpec.from_dict(d)


def test_non_json_is_refused():
    with pytest.raises(SpecError, match="not valid JSON"):
        NetworkSpec.from_json("{nope")
