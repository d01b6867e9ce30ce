"""NetworkSpec -> float32 TFLite flatbuffer, written directly: no TensorFlow, no converter.

Converting a candidate (spec -> Keras -> TFLite converter, `build_keras`) takes 2.0-7.5 s per
preset on this 2-core machine when it is quiet (median 6.4 s) and set the pace of a live search
(350 measurements in about 60 minutes by its store's timestamps, mostly conversions:
results/cpu/rbis-b0-to-b1-direct/README.md). This module writes the same file straight from
the one walk over the network's blocks (`blocks.network_blocks`, `BlockModel.layers`) with the
TFLite schema's object API that ai-edge-litert ships (`schema_py_generated`: `ModelT` ...
`Pack`): 7.6 ms (mbconv-tiny) to 56 ms (B2), median 34 ms over the presets, at load average
below 1 (results/benchmarks/direct_tflite_build__quiet.md); 91 ms (S3NAS) to 358 ms (B2),
median 178 ms, against 22-43 s for the converter at load 9-11 on the 2 shared cores
(results/benchmarks/direct_tflite_benchmark.md).

"The same file" means what the interpreter sees is what the converter writes for our Keras
model (read from converted files, `tests/test_build_tflite.py` compares them op by op):

- batch norm folded into the preceding conv, whose bias input holds the folded shift;
- relu and relu6 fused into CONV_2D / DEPTHWISE_CONV_2D; swish as LOGISTIC then MUL(x, s);
  hard swish as HARD_SWISH; all with 'SAME' padding, except the SE path's 1x1 convs
  ('VALID', as Keras's default padding gives them);
- SE: MEAN(axes 1, 2, keep dims) -> CONV_2D (bias, activation) -> CONV_2D (bias) ->
  LOGISTIC -> MUL(features, gate); residual: ADD(block input, projection);
- head: CONV_2D + activation, MEAN(axes 1, 2), FULLY_CONNECTED without a bias input (Keras
  initialises the classifier's bias to zero and the converter drops a zero bias);
- input "image" [1, H, W, C] with H and W dynamic (shape 1 and signature -1, as converted),
  static [1, R, R, C] when a resolution is given; the SE gates and the pooled vector static;
  constants before activations in the tensor list, zero biases of one length shared.

The weights are seeded random draws of what Keras initialises (glorot-uniform kernels, batch
norm at its initial statistics, so folded scale 1/sqrt(1 + eps) and zero shifts), so values
and their magnitudes match the converted file of a fresh model too: latency does not depend on
the values except through denormals, which this keeps alike. A trained network's weights
still go through Keras (`build_keras`).

A layer, block kind or activation the emitter does not know raises `EmitterUnsupported`;
`model_files.tflite_path` then falls back to the converter with one warning line.
"""

from __future__ import annotations

import math
import threading
from typing import Callable

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from latency_lab.network.blocks import BN_EPSILON, BlockModel, Layer, network_blocks
from latency_lab.network.spec import NetworkSpec

# Part of the cache key of emitted files: bump when the emitted model changes.
EMITTER_VERSION = 1
DESCRIPTION = "latency-lab direct emitter"
_BN_SCALE = 1 / math.sqrt(1 + BN_EPSILON)


class EmitterUnsupported(Exception):
    """A network the emitter cannot express (an unknown layer, block kind or activation)."""


class _DataBuffer(fb.BufferT):
    """A Buffer whose bytes are written straight into the flatbuffer being built, starting on
    a 16-byte boundary (the schema's force_align, which the generated Python object API leaves
    out). `fill(view)` writes the contents into the float32 or int32 view it is given, so a
    36 MB B2 is never copied between numpy, bytes and the builder (those copies took B2 from
    0.21 to 0.40 s at load 6)."""

    def __init__(self, nbytes: int, dtype, fill: Callable[[np.ndarray], None]):
        super().__init__()
        self.nbytes, self.dtype, self.fill = nbytes, dtype, fill

    def Pack(self, builder):
        n = self.nbytes
        builder.StartVector(1, n, 16)
        builder.head -= n
        view = np.frombuffer(builder.Bytes, self.dtype, n // np.dtype(self.dtype).itemsize,
                             builder.head)
        self.fill(view)
        del view   # a live view would pin the builder's bytearray
        builder.vectorNumElems = n
        data = builder.EndVector()
        fb.BufferStart(builder)
        fb.BufferAddData(builder, data)
        return fb.BufferEnd(builder)


class _Graph:
    """Tensors, buffers, operators and operator codes of one subgraph being written."""

    def __init__(self, seed: int, static: bool):
        self.rng = np.random.default_rng(seed)
        self.static = static
        self.consts: list = []          # TensorT, in creation order
        self.acts: list = []            # TensorT of activations, the input first
        self.buffers: list = [fb.BufferT()]   # buffer 0: the empty one every activation uses
        self.ops: list = []
        self.opcodes: dict[int, int] = {}     # builtin code -> index in operatorCodes
        self._shared: dict[tuple, object] = {}

    # -- tensors ---------------------------------------------------------------------------
    def _tensor(self, name: str, shape: list[int], signature: list[int] | None,
                buffer: int = 0, dtype: int | None = None):
        t = fb.TensorT()
        t.name, t.shape, t.shapeSignature, t.buffer = name, shape, signature, buffer
        t.type = fb.TensorType.FLOAT32 if dtype is None else dtype
        t.hasRank = True
        return t

    def const(self, name: str, shape: tuple[int, ...], fill: Callable[[np.ndarray], None],
              dtype=np.float32):
        """A constant tensor whose contents `fill` writes when the file is packed."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.buffers.append(_DataBuffer(nbytes, dtype, fill))
        t = self._tensor(name, list(shape), None, len(self.buffers) - 1,
                         fb.TensorType.INT32 if dtype == np.int32 else None)
        self.consts.append(t)
        return t

    def weights(self, name: str, shape: tuple[int, ...], fan_in: int, fan_out: int,
                scale: float = 1.0):
        """Glorot-uniform weights (Keras's default initialiser) times `scale`, drawn from the
        graph's seeded generator when packed (in buffer order, so a seed gives one file)."""
        limit = math.sqrt(6.0 / (fan_in + fan_out)) * scale
        rng = self.rng

        def fill(view: np.ndarray) -> None:
            rng.random(out=view, dtype=np.float32)
            view *= np.float32(2 * limit)
            view -= np.float32(limit)

        return self.const(name, shape, fill)

    def shared(self, key: tuple, make: Callable[[], object]):
        """One constant per key (zero biases of one length, the MEAN axes), as converted."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def zeros(self, n: int):
        return self.shared(("zeros", n), lambda: self.const(f"zeros_{n}", (n,), _fill(0)))

    def axes(self):
        return self.shared(("axes",), lambda: self.const("mean_axes", (2,), _fill([1, 2]),
                                                          np.int32))

    def feature_map(self, name: str, channels: int, size: int):
        """An activation [1, H, W, C]: dynamic (1 with signature -1) unless the graph is static."""
        if self.static:
            t = self._tensor(name, [1, size, size, channels], None)
        else:
            t = self._tensor(name, [1, 1, 1, channels], [1, -1, -1, channels])
        self.acts.append(t)
        return t

    def fixed(self, name: str, shape: list[int]):
        t = self._tensor(name, shape, None)
        self.acts.append(t)
        return t

    # -- operators -------------------------------------------------------------------------
    def op(self, code: int, inputs: list, outputs: list, options_type: int = 0, options=None):
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes.setdefault(code, len(self.opcodes))
        o.inputs, o.outputs = inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)
        return outputs[0]

    # -- the file --------------------------------------------------------------------------
    def finish(self, output) -> bytes:
        output.name = "Identity"   # the converter's name for the output
        tensors = [self.acts[0], *self.consts, *self.acts[1:]]
        index = {id(t): i for i, t in enumerate(tensors)}
        for o in self.ops:
            o.inputs = [-1 if t is None else index[id(t)] for t in o.inputs]
            o.outputs = [index[id(t)] for t in o.outputs]
        sub = fb.SubGraphT()
        sub.tensors, sub.operators, sub.name = tensors, self.ops, "main"
        sub.inputs, sub.outputs = [0], [index[id(output)]]
        model = fb.ModelT()
        model.version, model.description, model.subgraphs = 3, DESCRIPTION, [sub]
        model.operatorCodes = []
        for code in self.opcodes:   # dicts keep insertion order: index order
            c = fb.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            model.operatorCodes.append(c)
        version = b"1.14.0".ljust(16, b"\0")
        self.buffers.append(_DataBuffer(16, np.uint8, _fill(np.frombuffer(version, np.uint8))))
        meta = fb.MetadataT()
        meta.name, meta.buffer = "min_runtime_version", len(self.buffers) - 1
        model.metadata, model.buffers = [meta], self.buffers
        data = sum(b.nbytes + 16 for b in self.buffers[1:])
        builder = _take_builder(data + 64 * 1024 + 256 * (len(tensors) + len(self.ops)))
        try:
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            # one copy into the bytes the interpreter takes (Output() would make two)
            return bytes(memoryview(builder.Bytes)[builder.Head():])
        finally:
            _give_back(builder)


# One builder kept for the next file: a fresh one zero-fills (and page-faults) tens of MB
# that the weights overwrite anyway (B2: 36 MB, about a quarter of the emitter's time on this
# loaded machine). Flatbuffers writes every byte it hands out (padding included), so a
# cleared builder needs no zeroing. The process keeps the largest buffer it built (<= the
# largest model's size); a second thread emitting at the same time gets a builder of its own.
_spare: list = []
_spare_lock = threading.Lock()


def _take_builder(size: int):
    with _spare_lock:
        builder = _spare.pop() if _spare else None
    if builder is None or len(builder.Bytes) < size:
        return flatbuffers.Builder(size)
    builder.Clear()
    return builder


def _give_back(builder) -> None:
    with _spare_lock:
        _spare[:] = [builder]


def _fill(value) -> Callable[[np.ndarray], None]:
    def fill(view: np.ndarray) -> None:
        view[:] = value
    return fill


# -- activations ----------------------------------------------------------------------------
def _fused_code(g: _Graph, activation: str) -> int:
    """The fused activation of a conv: relu and relu6 fuse, swish and hard swish do not."""
    A = fb.ActivationFunctionType
    fused = {"relu": A.RELU, "relu6": A.RELU6, "swish": A.NONE, "hswish": A.NONE}
    if activation not in fused:
        raise EmitterUnsupported(f"activation {activation!r}")
    return fused[activation]


def _activate(g: _Graph, x, name: str, activation: str, channels: int, size: int, spatial=True):
    """The unfused part of an activation after a conv whose output is `x`."""
    O = fb.BuiltinOperator
    new = (lambda n: g.feature_map(n, channels, size)) if spatial else (
        lambda n: g.fixed(n, [1, 1, 1, channels]))
    if activation == "swish":
        s = g.op(O.LOGISTIC, [x], [new(f"{name}_sigmoid")])
        return g.op(O.MUL, [x, s], [new(f"{name}_act")], fb.BuiltinOptions.MulOptions,
                    fb.MulOptionsT())
    if activation == "hswish":
        return g.op(O.HARD_SWISH, [x], [new(f"{name}_act")])
    return x


# -- layers ---------------------------------------------------------------------------------
def _conv(g: _Graph, x, layer: Layer, name: str, act: str, size_in: int):
    O = fb.BuiltinOperator
    k, size = layer.kernel, layer.output_size(size_in)
    fused = _fused_code(g, act) if layer.act else fb.ActivationFunctionType.NONE
    # Keras's kernel (k, k, c_in, c_out) or (k, k, c, 1) sets the fans; batch norm at its
    # initial statistics folds into a scale of 1/sqrt(1 + eps) and a zero shift
    if layer.op == "dwconv":
        kernel = g.weights(f"{name}_kernel", (1, k, k, layer.c_in), k * k * layer.c_in, k * k,
                           _BN_SCALE)
        opts, code, kind = fb.DepthwiseConv2DOptionsT(), O.DEPTHWISE_CONV_2D, \
            fb.BuiltinOptions.DepthwiseConv2DOptions
        opts.depthMultiplier = 1
    else:
        kernel = g.weights(f"{name}_kernel", (layer.c_out, k, k, layer.c_in),
                           k * k * layer.c_in, k * k * layer.c_out, _BN_SCALE)
        opts, code, kind = fb.Conv2DOptionsT(), O.CONV_2D, fb.BuiltinOptions.Conv2DOptions
    opts.padding, opts.strideH, opts.strideW = fb.Padding.SAME, layer.stride, layer.stride
    opts.dilationHFactor = opts.dilationWFactor = 1
    opts.fusedActivationFunction = fused
    y = g.op(code, [x, kernel, g.zeros(layer.c_out)],
             [g.feature_map(f"{name}_conv", layer.c_out, size)], kind, opts)
    return _activate(g, y, name, act, layer.c_out, size) if layer.act else y


def _se(g: _Graph, x, layer: Layer, name: str, act: str, size_in: int):
    O = fb.BuiltinOperator
    c, sq = layer.c_in, layer.squeezed

    def conv1x1(inp, c_in, c_out, fused, suffix):
        opts = fb.Conv2DOptionsT()
        opts.padding, opts.strideH, opts.strideW = fb.Padding.VALID, 1, 1
        opts.dilationHFactor = opts.dilationWFactor = 1
        opts.fusedActivationFunction = fused
        kernel = g.weights(f"{name}_{suffix}_kernel", (c_out, 1, 1, c_in), c_in, c_out)
        return g.op(O.CONV_2D, [inp, kernel, g.zeros(c_out)],
                    [g.fixed(f"{name}_{suffix}", [1, 1, 1, c_out])],
                    fb.BuiltinOptions.Conv2DOptions, opts)

    mean = fb.ReducerOptionsT()
    mean.keepDims = True
    s = g.op(O.MEAN, [x, g.axes()], [g.fixed(f"{name}_pool", [1, 1, 1, c])],
             fb.BuiltinOptions.ReducerOptions, mean)
    s = conv1x1(s, c, sq, _fused_code(g, act), "reduce")
    s = _activate(g, s, f"{name}_reduce", act, sq, 1, spatial=False)
    s = conv1x1(s, sq, c, fb.ActivationFunctionType.NONE, "expand")
    s = g.op(O.LOGISTIC, [s], [g.fixed(f"{name}_gate", [1, 1, 1, c])])
    return g.op(O.MUL, [x, s], [g.feature_map(name, c, size_in)], fb.BuiltinOptions.MulOptions,
                fb.MulOptionsT())


def _pool(g: _Graph, x, layer: Layer, name: str, act: str, size_in: int):
    opts = fb.ReducerOptionsT()
    opts.keepDims = False
    return g.op(fb.BuiltinOperator.MEAN, [x, g.axes()], [g.fixed(name, [1, layer.c_out])],
                fb.BuiltinOptions.ReducerOptions, opts)


def _dense(g: _Graph, x, layer: Layer, name: str, act: str, size_in: int):
    w = g.weights(f"{name}_kernel", (layer.c_out, layer.c_in), layer.c_in, layer.c_out)
    return g.op(fb.BuiltinOperator.FULLY_CONNECTED, [x, w, None],
                [g.fixed(name, [1, layer.c_out])],
                fb.BuiltinOptions.FullyConnectedOptions, fb.FullyConnectedOptionsT())


EMITTERS: dict[str, Callable] = {"conv": _conv, "dwconv": _conv, "se": _se, "pool": _pool,
                                 "dense": _dense}


def _block(g: _Graph, x, block: BlockModel, prefix: str, size_in: int):
    """A block's layers, then its residual add; layer names as `build_keras` names them."""
    y = x
    for layer, size in block.layer_inputs(size_in):
        emit = EMITTERS.get(layer.op)
        if emit is None:
            raise EmitterUnsupported(f"layer {layer.op!r} of block {block.name}")
        name = f"{prefix}_{layer.role}" if block.kind == "mbconv" else layer.role
        y = emit(g, y, layer, name, block.activation, size)
    if block.residual:
            y = g.op(fb.BuiltinOperator.ADD, [x, y],
                 [g.feature_map(f"{prefix}_add", block.c_out, block.output_size(size_in))],
                 fb.BuiltinOptions.AddOptions, fb.AddOptionsT())
    return y


def emit_tflite(model: NetworkSpec | BlockModel, resolution: int | None = None,
                seed: int = 0) -> bytes:
    """The float32 .tflite flatbuffer of a network (input [1, H, W, 3]) or of one block (input
    [1, H, W, c_in]), H and W dynamic unless `resolution` fixes them; `EmitterUnsupported`
    for what it cannot express."""
    g = _Graph(seed, static=resolution is not None)
    if isinstance(model, BlockModel):
        size = int(resolution or 1)
        parts, channels = [(model, "b", size)], model.c_in
    else:
        sites = network_blocks(model, resolution)
        parts = [(s.block, f"s{s.stage}b{s.index}", s.size) for s in sites]
        channels, size = 3, sites[0].size
    x = g.feature_map("image", channels, size)
    for block, prefix, block_size in parts:
        x = _block(g, x, block, prefix, block_size)
    return g.finish(x)


# -- reading a file back --------------------------------------------------------------------
_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}


def op_list(data: bytes) -> list[tuple]:
    """What the interpreter executes, names left out: per operator its name, options, and for
    every input and output its (shape, shape signature, type, constant?), -1 for an absent
    input. Two files with equal lists are the same model up to weight values."""
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    sub = m.subgraphs[0]

    def tensor(i: int):
        if i < 0:
            return -1
        t = sub.tensors[i]
        sig = None if t.shapeSignature is None else [int(v) for v in t.shapeSignature]
        return ([int(v) for v in t.shape], sig, int(t.type), m.buffers[t.buffer].data is not None)

    out = []
    for op in sub.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = _OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]
        opts = None if op.builtinOptions is None else sorted(
            (k, v) for k, v in vars(op.builtinOptions).items())
        out.append((name, opts, [tensor(i) for i in op.inputs], [tensor(i) for i in op.outputs]))
    return out
