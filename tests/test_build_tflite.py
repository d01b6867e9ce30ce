"""The direct TFLite emitter: the converter's model, operator for operator, without TensorFlow."""

from __future__ import annotations

import random

import numpy as np
import pytest

from latency_lab.network import presets
from latency_lab.network.blocks import BlockModel
from latency_lab.models.build_tflite import EMITTERS, emit_tflite, op_list
from latency_lab.network.scaling import random_scaled
from latency_lab.network.spec import NetworkSpec

RESOLUTIONS = (64, 97, 160)


def run(data: bytes, size: int, channels: int = 3, resolver=None):
    """Resize, allocate and invoke a model on real LiteRT; returns (interpreter, output)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=bytes(data),
                         experimental_op_resolver_type=resolver or OpResolverType.AUTO)
    idx = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(idx, [1, size, size, channels], strict=True)
    interp.allocate_tensors()
    x = np.random.default_rng(size).random((1, size, size, channels), np.float32)
    interp.set_tensor(idx, x)
    interp.invoke()
    return interp, interp.get_tensor(interp.get_output_details()[0]["index"])


def delegation(interp) -> list:
    """The XNNPACK partitions: (input tensors, output tensors) of every DELEGATE node."""
    return [(sorted(map(int, op["inputs"])), sorted(map(int, op["outputs"])))
            for op in interp._get_ops_details() if op["op_name"] == "DELEGATE"]


def _variants(tiny: NetworkSpec) -> dict[str, NetworkSpec]:
    d = tiny.to_dict()
    return {f"tiny-{a}": NetworkSpec.from_dict({**d, "activation": a})
            for a in ("relu", "relu6", "swish", "hswish")}


def test_emitted_network_runs_at_any_resolution(tiny):
    data = emit_tflite(tiny)
    for size in RESOLUTIONS:
        interp, out = run(data, size)
        assert list(interp.get_input_details()[0]["shape_signature"]) == [1, -1, -1, 3]
        assert out.shape == (1, tiny.num_classes) and np.isfinite(out).all()


def test_emitter_imports_no_tensorflow(tiny):
    import subprocess
    import sys

    code = ("import sys\nfrom latency_lab.network import presets\n"
            "from latency_lab.models.build_tflite import emit_tflite\n"
            "n = len(emit_tflite(presets.get('efficientnet-b0')))\n"
            "print(n, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    size, tf_loaded, keras_loaded = out.stdout.split()
    # B0's 5.3 M parameters as float32, less the batch norms folded into the convs
    assert 20e6 < int(size) < 4 * 5_288_548 and tf_loaded == keras_loaded == "False"


def test_fixed_resolution_gives_static_shapes(tiny):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=emit_tflite(tiny, resolution=96))
    detail = interp.get_input_details()[0]
    assert list(detail["shape"]) == [1, 96, 96, 3]
    assert list(detail["shape_signature"]) == [1, 96, 96, 3]
    interp.allocate_tensors()
    interp.invoke()
    # every activation has its real size: the stem halves 96 to 48
    stem = next(t for t in interp.get_tensor_details() if t["name"] == "stem_conv")
    assert list(stem["shape"]) == [1, 48, 48, tiny.stem.width]


@pytest.mark.parametrize("block", [
    BlockModel("stem", 3, 32, 3, 1, 2, 0, "swish"),
    BlockModel("mbconv", 16, 16, 3, 6, 1, 4, "relu"),
    BlockModel("mbconv", 24, 40, 5, 6, 2, 6, "hswish"),
    BlockModel("head", 40, 64, 1, 1, 1, 0, "relu6", 10)])
def test_block_models_take_their_input_channels(block):
    interp, out = run(emit_tflite(block), 33, block.c_in)
    expected = (1, block.num_classes) if block.kind == "head" else (
        1, block.output_size(33), block.output_size(33), block.c_out)
    assert out.shape == expected and np.isfinite(out).all()


def test_seeded_weights_have_keras_initial_distribution(tiny):
    a, b, other = emit_tflite(tiny, seed=3), emit_tflite(tiny, seed=3), emit_tflite(tiny, seed=4)
    assert a == b and a != other and op_list(a) == op_list(other)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=a)
    tensors = {t["name"]: t for t in interp.get_tensor_details()}
    w = interp.get_tensor(tensors["s1b0_expand_kernel"]["index"])     # 1x1 conv 8 -> 32
    limit = np.sqrt(6 / (8 + 32)) / np.sqrt(1 + 1e-3)                 # glorot, BN folded
    assert w.shape == (32, 1, 1, 8) and np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.9 * limit and abs(w.mean()) < 0.1 * limit
    assert not interp.get_tensor(tensors["zeros_32"]["index"]).any()


def test_unknown_layer_is_refused_not_guessed(tiny, monkeypatch):
    from latency_lab.models.build_tflite import EmitterUnsupported

    monkeypatch.delitem(EMITTERS, "se")
    with pytest.raises(EmitterUnsupported, match="'se'"):
        emit_tflite(tiny)


# -- against the converter ------------------------------------------------------------------
def _converted_networks(tiny):
    rng = random.Random(11)
    b0 = presets.get("efficientnet-b0")
    nets = {name: presets.get(name) for name in presets.names()}
    nets["b0-random"] = random_scaled(b0, 2, 1, rng)
    nets.update({f"tiny-random-{i}": random_scaled(tiny, 3, 2, rng) for i in range(2)})
    nets.update(_variants(tiny))
    return nets


@pytest.mark.slow
@pytest.mark.parametrize("key", ["efficientnet-b0", "efficientnet-b1", "efficientnet-b2",
                                 "efficientnet-b0-rbis-b1", "s3nas-b0", "b0-random",
                                 "tiny-random-0", "tiny-random-1", "tiny-relu",
                                 "tiny-relu6", "tiny-swish", "tiny-hswish"])
def test_same_model_as_the_converter(key, tiny, model_dir):
    """Operators, options, order, tensor shapes, outputs at several resolutions and the
    XNNPACK partitions of the emitted file equal those of the converted one."""
    from latency_lab.models.build_keras import tflite_path

    spec = _converted_networks(tiny)[key]
    converted = tflite_path(spec, model_dir).read_bytes()
    direct = emit_tflite(spec)
    assert op_list(direct) == op_list(converted)
    for size in (64, 100) if spec.num_classes == 10 else (96,):
        (i_dir, out_dir), (i_conv, out_conv) = run(direct, size), run(converted, size)
        assert out_dir.shape == out_conv.shape == (1, spec.num_classes)
        assert delegation(i_dir) == delegation(i_conv) and len(delegation(i_dir)) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("block", [BlockModel("stem", 3, 16, 3, 1, 2, 0, "swish"),
                                   BlockModel("mbconv", 16, 16, 3, 6, 1, 4, "swish"),
                                   BlockModel("mbconv", 16, 24, 5, 4, 2, 0, "relu6"),
                                   BlockModel("head", 24, 64, 1, 1, 1, 0, "hswish", 10)])
def test_block_models_as_the_converter(block, model_dir):
    from latency_lab.models.build_keras import tflite_path

    converted = tflite_path(block, model_dir).read_bytes()
    assert op_list(emit_tflite(block)) == op_list(converted)
