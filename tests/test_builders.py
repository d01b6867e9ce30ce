"""The Keras and torch builders against the spec (parameter counts, shapes, dynamic TFLite)."""

import numpy as np
import pytest

from latency_lab.network import complexity

from latency_lab.network import presets


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet-b0", "s3nas-b0", "efficientnet-b0-rbis-b1"])
def test_keras_model_has_the_spec_parameter_count(name):
    from latency_lab.models.build_keras import build_keras

    spec = presets.get(name)
    model = build_keras(spec, 224)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == complexity.params(spec)


@pytest.mark.slow
def test_keras_matches_keras_applications_b0():
    import keras

    from latency_lab.models.build_keras import build_keras

    ref = keras.applications.EfficientNetB0(weights=None)
    ours = build_keras(presets.get("efficientnet-b0"), 224)
    count = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    assert count(ours) == count(ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", presets.names())
def test_torch_model_has_the_spec_parameter_count(name):
    torch = pytest.importorskip("torch")
    from latency_lab.models.build_torch import build_torch, trainable_params

    spec = presets.get(name)
    model = build_torch(spec)
    assert trainable_params(model) == complexity.params(spec)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, spec.num_classes)


def test_torch_network_is_stages_of_blocks_with_switchable_residuals(tiny):
    torch = pytest.importorskip("torch")
    from latency_lab.models.build_torch import build_torch

    model = build_torch(tiny)
    assert [len(stage) for stage in model.stages] == list(tiny.depths)
    first = model.stages[1][0]
    assert first.where == "s1.b0" and [n for n, _ in first.named_children()] == [
        "expand", "dw", "project"]
    assert first.dw.conv.groups == first.block.c_mid and not first.residual
    n_convs = sum(1 for b in (model.stem, *model.blocks(), model.head) for l in b.block.layers()
                  if l.op in ("conv", "dwconv"))
    assert len(list(model.batch_norms())) == n_convs
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        with_links = model(x)
        assert torch.equal(model.head(model.stages[1](model.stages[0](model.stem(x)))), with_links)
        model.set_residual(False)
        assert not any(b.residual for b in model.blocks())
        without = model(x)
        model.set_residual(True)
        assert [b.residual for b in model.blocks()] == [True, False, True]
        assert not torch.equal(with_links, without) and torch.equal(model(x), with_links)
        assert model.forward_features(x).shape == (1, tiny.head_width, 16, 16)


@pytest.mark.slow
def test_tflite_converted_once_runs_at_any_resolution(tiny, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from latency_lab.models.build_keras import tflite_path

    path = tflite_path(tiny, tmp_path)
    assert path.name == f"{tiny.fingerprint}.tflite" and path.stat().st_size > 4 * complexity.params(tiny)
    interp = Interpreter(model_path=str(path))
    idx = interp.get_input_details()[0]["index"]
    assert list(interp.get_input_details()[0]["shape_signature"]) == [1, -1, -1, 3]
    for r in (64, 100):
        interp.resize_tensor_input(idx, [1, r, r, 3], strict=True)
        interp.allocate_tensors()
        interp.set_tensor(idx, np.ones((1, r, r, 3), np.float32))
        interp.invoke()
        out = interp.get_tensor(interp.get_output_details()[0]["index"])
        assert out.shape == (1, 10) and np.isfinite(out).all()
    inode = path.stat().st_ino
    # cached, not re-converted (a conversion writes a new file); its mtime is its last use
    assert tflite_path(tiny, tmp_path).stat().st_ino == inode


@pytest.mark.slow
def test_tflite_agrees_with_keras(tiny, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from latency_lab.models.build_keras import build_keras, convert_tflite

    x = np.random.default_rng(0).random((1, 72, 72, 3), np.float32)
    expected = np.asarray(build_keras(tiny)(x, training=False))
    p = tmp_path / "m.tflite"
    p.write_bytes(convert_tflite(tiny))
    interp = Interpreter(model_path=str(p))
    idx = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(idx, [1, 72, 72, 3], strict=True)
    interp.allocate_tensors()
    interp.set_tensor(idx, x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_conversion_runs_in_a_worker_process(tiny, tmp_path):
    """tflite_path converts in a worker: the calling process never imports TensorFlow (whose
    per-conversion leak killed a 350-network search) and gets a working model."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from latency_lab.network.spec import NetworkSpec\n"
        "from latency_lab.models.build_keras import tflite_path\n"
        f"spec = NetworkSpec.from_json({tiny.to_json()!r})\n"
        f"path = tflite_path(spec, {str(tmp_path)!r})\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "interp = Interpreter(model_path=str(path))\n"
        "interp.allocate_tensors()\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, path.stat().st_size)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env={**__import__("os").environ,
                                           "LATENCY_LAB_CONVERT_IN_PROCESS": "0"})
    assert out.returncode == 0, out.stderr[-2000:]
    tf_loaded, keras_loaded, size = out.stdout.split()
    assert tf_loaded == "False" and keras_loaded == "False" and int(size) > 1000


@pytest.mark.slow
def test_a_network_name_that_is_no_keras_scope_name_still_builds(tiny):
    """A name with spaces or slashes once failed deep inside Keras (151 traceback lines) on the
    first conversion of an architecture; the model name does not reach the .tflite cache key."""
    from dataclasses import replace

    from latency_lab.models.build_keras import build_keras

    odd = replace(tiny, name="my net / v2 (ü)")
    model = build_keras(odd)
    assert model.name == "my_net___v2____" and model.count_params() > 0
