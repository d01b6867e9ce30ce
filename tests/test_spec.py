"""Network specs: JSON round trip, fingerprint identity, validation."""

import json

import pytest

from latency_lab.network import presets
from latency_lab.network.spec import NetworkSpec, SpecError


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


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["stages"][0].update(width=16.7), "stage 0 width must be an integer, got 16.7"),
    (lambda d: d["stages"][0].update(width=True), "stage 0 width must be an integer, got True"),
    (lambda d: d["stages"][0].update(width="16"), "must be an integer, got '16'"),
    (lambda d: d["stem"].update(width=False), "stem width must be an integer"),
    (lambda d: d["head"].update(width=1280.5), "head width must be an integer"),
    (lambda d: d.update(num_classes=True), "num_classes must be an integer"),
    (lambda d: d.update(resolution=224.5), "resolution must be an integer"),
    (lambda d: d["stages"][1]["blocks"][0].update(kernel=5.5), "block 0 kernel must be an integer"),
    (lambda d: d["stages"][1]["blocks"][0].update(stride=True), "block 0 stride must be an integer"),
    (lambda d: d["stages"][1]["blocks"][0].update(expansion=True), "expansion must be a finite number"),
    (lambda d: d["stages"][1]["blocks"][0].update(expansion=float("inf")), "finite number, got inf"),
    (lambda d: d["stages"][0].update(se_ratio=float("nan")), "se_ratio must be a finite number"),
    (lambda d: d["stages"][0].update(blocks="3x3"), "stage 0 blocks must be a JSON list"),
    (lambda d: d.update(stages={"0": 1}), "stages must be a JSON list"),
    (lambda d: d.update(name=["b0"]), "name must be a string"),
])
def test_fields_take_their_own_type_and_nothing_is_truncated(tiny, mutate, message):
    """16.7 and true used to become 16 and 1, giving a network another's fingerprint."""
    d = json.loads(tiny.to_json())
    mutate(d)
    with pytest.raises(SpecError, match=message):
        NetworkSpec.from_dict(d)


def test_integral_floats_are_integers(tiny):
    d = json.loads(tiny.to_json())
    d["stages"][0]["width"] = 8.0
    assert NetworkSpec.from_dict(d).fingerprint == tiny.fingerprint


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["stages"][0].update(width=10**9), "parameters: float32 weights over"),
    (lambda d: d["head"].update(width=10**9), "do not fit the 2 GiB a TFLite model can hold"),
    (lambda d: d.update(num_classes=10**9), "parameters"),
    (lambda d: (d["stages"][1].pop("blocks"), d["stages"][1].update(depth=10_000)),
     r"depth must be 1..200, got 10000 \(converting a model takes 0.3-1.9 s per block"),
    (lambda d: (d["stages"][1].pop("blocks"), d["stages"][1].update(depth=10**12)),
     "depth must be an integer of at most 2,147,483,647"),
    (lambda d: d.update(stages=[{"width": 8, "blocks": [{"kernel": 3, "expansion": 1}] * 150}] * 2),
     "300 blocks: at most 200"),
    (lambda d: d["stages"][0]["blocks"][0].update(kernel=33), "largest depthwise kernel"),
    (lambda d: d["stages"][0]["blocks"][0].update(expansion=1e6), "published MBConv networks use 1..6"),
    (lambda d: d.update(name="x" * 201), "at most 200 characters"),
    (lambda d: d.update(name="b0\nforged,row"), "printable"),
])
def test_what_cannot_be_built_or_measured_is_refused_with_the_reason(tiny, mutate, message):
    d = json.loads(tiny.to_json())
    mutate(d)
    with pytest.raises(SpecError, match=message):
        NetworkSpec.from_dict(d)


@pytest.mark.parametrize("text, message", [
    ('{"stem": {"width": 8}, "head": 32, "stages": [{"width": 8, "depth": 1, "kernel": 3, '
     '"expansion": Infinity}]}', "Infinity is not a JSON number"),
    ('{"resolution": NaN}', "NaN is not a JSON number"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_json_that_python_would_accept_but_is_not_json_or_too_deep(text, message):
    with pytest.raises(SpecError, match=message):
        NetworkSpec.from_json(text)


def test_a_network_file_that_is_not_utf8_is_one_error(tmp_path):
    from latency_lab.network.presets import load_network

    p = tmp_path / "net.json"
    p.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(SpecError, match="is not UTF-8 text"):
        load_network(str(p))
