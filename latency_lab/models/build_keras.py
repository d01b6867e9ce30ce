"""NetworkSpec -> Keras model -> float32 TFLite flatbuffer with dynamic height and width.

A network is converted once (EfficientNet-B0: 5.4 s on the 2-core machine at load below 1,
26 s at load 10; results/benchmarks/direct_tflite_build__quiet.md, direct_tflite_benchmark.md)
with input shape [1, H, W, 3], H and W dynamic; interpreters resize the input per resolution.
Converted models are cached on disk by fingerprint (`tflite_path`), so a sweep, a resumed sweep
and a later search share one conversion. TensorFlow is imported only when a model is built.

The model is the one walk over the network's blocks (`blocks.network_blocks`), each block's
layers (`BlockModel.layers`) made as Keras layers. A single block (`blocks.BlockModel`: stem,
MBConv block or head) converts the same way, from the same layer code, with input
[1, H, W, c_in]; the per-block lookup table (`tables/lut_record.py`) measures those.

`tflite_path` converts in a worker process (`convert_isolated`), replaced after
`CONVERSIONS_PER_WORKER` conversions: TensorFlow keeps part of every converted graph for the
life of the process (about 40 MB each, even after `keras.backend.clear_session`), and a search
converts hundreds of networks. The measuring process never imports TensorFlow.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import re
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from latency_lab.network.blocks import BN_EPSILON, BlockModel, Layer, network_blocks
from latency_lab.errors import UserError
from latency_lab.fileio import write_atomic
from latency_lab.models import cache as model_cache
from latency_lab.paths import cache_dir
from latency_lab.network.spec import NetworkSpec

# A fresh worker (and a fresh TensorFlow import, ~5 s: a process's first conversion took 9.3 s
# against 4.4 s for the next, results/cpu/rbis-tiny-net2net/time_split.md) after this many
# conversions: bounds the worker's leak at ~25 x 40 MB (benchmarks/conversion_memory.py).
# LATENCY_LAB_CONVERT_IN_PROCESS=1 converts in this process.
CONVERSIONS_PER_WORKER = 25
_pool: ProcessPoolExecutor | None = None

_KERAS_ACTIVATIONS = {"swish": "swish", "relu": "relu", "relu6": "relu6", "hswish": "hard_swish"}


def _keras_layer(x, layer: Layer, name: str, act: str):
    """One `blocks.Layer` as Keras layers named after `name` (e.g. s0b0_expand_conv)."""
    from keras import layers

    if layer.op in ("conv", "dwconv"):
        if layer.op == "dwconv":
            x = layers.DepthwiseConv2D(layer.kernel, layer.stride, padding="same",
                                       use_bias=False, name=f"{name}_dw")(x)
        else:
            x = layers.Conv2D(layer.c_out, layer.kernel, layer.stride, padding="same",
                              use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        return layers.Activation(act, name=f"{name}_act")(x) if layer.act else x
    if layer.op == "se":
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
        s = layers.Conv2D(layer.squeezed, 1, activation=act, name=f"{name}_reduce")(s)
        s = layers.Conv2D(layer.c_out, 1, activation="sigmoid", name=f"{name}_expand")(s)
        return layers.Multiply(name=name)([x, s])
    if layer.op == "pool":
        return layers.GlobalAveragePooling2D(name=name)(x)
    return layers.Dense(layer.c_out, name=name)(x)


def _keras_block(x, block: BlockModel, prefix: str):
    """A block's layers (`BlockModel.layers`) and its residual add. Layers of an MBConv block
    are named `{prefix}_{role}`, those of the stem and head by their role alone."""
    from keras import layers

    act = _KERAS_ACTIVATIONS[block.activation]
    y = x
    for layer in block.layers():
        y = _keras_layer(y, layer, f"{prefix}_{layer.role}" if block.kind == "mbconv"
                         else layer.role, act)
    return layers.Add(name=f"{prefix}_add")([x, y]) if block.residual else y


def _keras_name(name: str) -> str:
    """A model name Keras accepts as a name scope (a network may be called "my net/v2")."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("._-") or "network"


def build_keras(spec: NetworkSpec, resolution: int | None = None, seed: int = 0):
    """The Keras functional model of `spec`; input (None, None, 3) unless `resolution` is given."""
    import keras

    keras.utils.set_random_seed(seed)
    shape = (resolution, resolution, 3) if resolution else (None, None, 3)
    inputs = keras.Input(shape=shape, batch_size=1, name="image")
    x = inputs
    for site in network_blocks(spec):
        x = _keras_block(x, site.block, f"s{site.stage}b{site.index}")
    return keras.Model(inputs, x, name=_keras_name(spec.name))


def build_block_keras(block: BlockModel, size: int | None = None, seed: int = 0):
    """A one-block Keras model (stem, MBConv or head+pool+classifier, see `blocks.BlockModel`)
    built from the same layer code as `build_keras`; input (None, None, c_in) unless `size`."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(size, size, block.c_in), batch_size=1, name="image")
    return keras.Model(inputs, _keras_block(inputs, block, "b"), name=f"block_{block.fingerprint}")


def convert_tflite(spec: NetworkSpec | BlockModel, resolution: int | None = None) -> bytes:
    """Float32 TFLite flatbuffer of `spec` with input [1, H, W, C], H and W dynamic unless
    `resolution` fixes them (C = 3 for a network, the block's input channels for a
    `BlockModel`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if isinstance(spec, BlockModel):
        model, channels = build_block_keras(spec), spec.c_in
    else:
        model, channels = build_keras(spec), 3
    fn = tf.function(lambda image: model(image, training=False),
                     input_signature=[tf.TensorSpec([1, resolution, resolution, channels],
                                                    tf.float32, name="image")])
    # Freeze first: converting the function with its variables captured keeps them as
    # resource variables (VAR_HANDLE ops, no weights in the file) in TF 2.21 + Keras 3.
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    # The frozen function has no variables left to track, so the converter's warning that
    # asks for a trackable object does not apply; keep it off the user's terminal.
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    try:
        return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()
    finally:
        absl_log.setLevel(level)
        # Keras keeps every model built in its global graph state: a search converts hundreds
        # of networks, and without this one process grew past 24 GiB.
        import keras

        keras.backend.clear_session()


class ConversionError(UserError):
    """The converter worker died (killed for memory, crashed) before returning a model."""


def convert_isolated(spec: NetworkSpec | BlockModel, resolution: int | None = None) -> bytes:
    """`convert_tflite` in the worker process (see the module docstring)."""
    global _pool
    if os.environ.get("LATENCY_LAB_CONVERT_IN_PROCESS") == "1":
        return convert_tflite(spec, resolution)
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, max_tasks_per_child=CONVERSIONS_PER_WORKER,
                                    mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_import_tensorflow_quietly)
    try:
        return _pool.submit(convert_tflite, spec, resolution).result()
    except BrokenProcessPool:
        _pool = None
        raise ConversionError(f"the converter process died converting {spec.fingerprint} "
                              "(out of memory?)") from None


def _import_tensorflow_quietly() -> None:
    """The worker's first step: import TensorFlow with the process's stderr closed, because its
    C++ start-up lines (oneDNN, absl) ignore TF_CPP_MIN_LOG_LEVEL and would land in the middle
    of a sweep's progress bar. Conversion errors still reach the caller as exceptions.

    Ctrl-C reaches every process of the terminal's group: the worker ignores it (an idle
    worker would print a KeyboardInterrupt traceback) and ends when the caller does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@atexit.register
def _shutdown_pool() -> None:
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)


def tflite_path(spec: NetworkSpec | BlockModel, root: Path | None = None) -> Path:
    """Path of the converted model of `spec`, converting and caching it on first use."""
    root = Path(root) if root else cache_dir() / "models"
    path = root / f"{spec.fingerprint}.tflite"
    if path.exists() and path.stat().st_size > 0:
        model_cache.touch(path)
        return path
    data = convert_isolated(spec)
    write_atomic(path, data)  # a crash never leaves a truncated model under the final name
    write_atomic(root / f"{spec.fingerprint}.json", spec.to_json())
    model_cache.touch(path)
    model_cache.enforce_cap(root)   # least recently used models go past the size cap
    return path
