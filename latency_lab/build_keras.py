"""NetworkSpec -> Keras model -> float32 TFLite flatbuffer with dynamic height and width.

A network is converted once (about 30 s for EfficientNet-B0 on a laptop-class CPU) with input
shape [1, H, W, 3], H and W dynamic; interpreters resize the input per resolution. Converted
models are cached on disk by fingerprint (`tflite_path`), so a sweep, a resumed sweep and a
later search share one conversion. TensorFlow is imported only when a model is built.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from latency_lab.complexity import expanded_channels, se_channels
from latency_lab.paths import cache_dir
from latency_lab.spec import NetworkSpec

_KERAS_ACTIVATIONS = {"swish": "swish", "relu": "relu", "relu6": "relu6", "hswish": "hard_swish"}
BN_EPSILON = 1e-3  # keras.applications.efficientnet


def build_keras(spec: NetworkSpec, resolution: int | None = None, seed: int = 0):
    """The Keras functional model of `spec`; input (None, None, 3) unless `resolution` is given."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    act = _KERAS_ACTIVATIONS[spec.activation]
    shape = (resolution, resolution, 3) if resolution else (None, None, 3)
    inputs = keras.Input(shape=shape, batch_size=1, name="image")

    def conv_bn(x, filters, kernel, stride, name, activate=True, depthwise=False):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                                       name=f"{name}_dw")(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                              name=f"{name}_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        return layers.Activation(act, name=f"{name}_act")(x) if activate else x

    x = conv_bn(inputs, spec.stem.width, spec.stem.kernel, spec.stem.stride, "stem")
    c_in = spec.stem.width
    for i, stage in enumerate(spec.stages):
        for j, b in enumerate(stage.blocks):
            name = f"s{i}b{j}"
            c_mid = expanded_channels(c_in, b.expansion)
            y = conv_bn(x, c_mid, 1, 1, f"{name}_expand") if c_mid != c_in else x
            y = conv_bn(y, c_mid, b.kernel, b.stride, f"{name}_dw", depthwise=True)
            if stage.se_ratio > 0:
                s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(y)
                s = layers.Conv2D(se_channels(c_in, stage.se_ratio), 1, activation=act,
                                  name=f"{name}_se_reduce")(s)
                s = layers.Conv2D(c_mid, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
                y = layers.Multiply(name=f"{name}_se")([y, s])
            y = conv_bn(y, stage.width, 1, 1, f"{name}_project", activate=False)
            if b.stride == 1 and c_in == stage.width:
                y = layers.Add(name=f"{name}_add")([x, y])
            x, c_in = y, stage.width
    x = conv_bn(x, spec.head_width, 1, 1, "head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(spec.num_classes, name="classifier")(x)
    return keras.Model(inputs, x, name=spec.name)


def convert_tflite(spec: NetworkSpec) -> bytes:
    """Float32 TFLite flatbuffer of `spec` with input [1, H, W, 3], H and W dynamic."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    model = build_keras(spec)
    fn = tf.function(lambda image: model(image, training=False),
                     input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="image")])
    # Freeze first: converting the function with its variables captured keeps them as
    # resource variables (VAR_HANDLE ops, no weights in the file) in TF 2.21 + Keras 3.
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def tflite_path(spec: NetworkSpec, root: Path | None = None) -> Path:
    """Path of the converted model of `spec`, converting and caching it on first use."""
    root = Path(root) if root else cache_dir() / "models"
    path = root / f"{spec.fingerprint}.tflite"
    if path.exists() and path.stat().st_size > 0:
        return path
    root.mkdir(parents=True, exist_ok=True)
    data = convert_tflite(spec)
    fd, tmp = tempfile.mkstemp(dir=root, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # atomic: a crash never leaves a truncated model under the final name
    (root / f"{spec.fingerprint}.json").write_text(spec.to_json())
    return path
