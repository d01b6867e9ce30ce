"""NetworkSpec -> torch `nn.Module`: the same network as `build_keras`, layer for layer.

For the GPU drivers (CUDA, ONNX -> TensorRT) and for evaluators that train or score networks.
Built on the one walk (`blocks.network_blocks`): a `Network` is `stem`, `stages` (one
`nn.Sequential` of `Block`s per body stage) and `head`; a `Block` holds its `BlockModel` and
one child module per layer, named by the layer's role (`expand`, `dw`, `se`, `project`;
`stem`; `head`, `pool`, `classifier`), each conv a `ConvBN` with `conv`, `bn` and `act`.
So a Net2Net transform finds `net.stages[i][j].expand.conv`, a Zen-Score evaluator switches
residual links off with `net.set_residual(False)` and finds every batch norm with
`net.batch_norms()`. Same parameter count as `complexity.params(spec)`; batch-norm epsilon
and SE sizes as in Keras. torch is imported when this module is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import torch
from torch import nn

from latency_lab.network.blocks import BN_EPSILON, BlockModel, Layer, network_blocks, stage_sites
from latency_lab.network.spec import NetworkSpec

_ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}


def _same_padding(kernel: int) -> int:
    # Keras 'same' pads (k-1)//2 on the left/top for odd kernels at stride 1, and for stride 2
    # pads asymmetrically depending on the input size; symmetric (k-1)//2 gives the same output
    # size ceil(in/stride) and the same work. Outputs differ at the border for stride 2 only.
    return (kernel - 1) // 2


class ConvBN(nn.Sequential):
    """conv (no bias) -> batch norm (-> activation); children `conv`, `bn`, `act`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, act: type | None,
                 groups: int = 1):
        parts = OrderedDict(
            conv=nn.Conv2d(c_in, c_out, kernel, stride, _same_padding(kernel), groups=groups,
                           bias=False),
            bn=nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=0.01))
        if act is not None:
            parts["act"] = act()
        super().__init__(parts)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int, act: type):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class GlobalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _torch_layer(layer: Layer, act: type) -> nn.Module:
    if layer.op in ("conv", "dwconv"):
        return ConvBN(layer.c_in, layer.c_out, layer.kernel, layer.stride,
                      act if layer.act else None,
                      groups=layer.c_in if layer.op == "dwconv" else 1)
    if layer.op == "se":
        return SqueezeExcite(layer.c_in, layer.squeezed, act)
    if layer.op == "pool":
        return GlobalPool()
    return nn.Linear(layer.c_in, layer.c_out)


class Block(nn.Module):
    """One `BlockModel` (stem, MBConv block, head): its layers in order, then the residual add
    when `residual` is on (by default when the block has one: `block.residual`)."""

    def __init__(self, block: BlockModel, where: str = ""):
        super().__init__()
        self.block, self.where = block, where
        act = _ACTIVATIONS[block.activation]
        for layer in block.layers():
            self.add_module(layer.role, _torch_layer(layer, act))
        self.residual = block.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for module in self.children():
            y = module(y)
        return x + y if self.residual else y


class Network(nn.Module):
    """`stem` -> `stages[i]` (the blocks of body stage i) -> `head` (conv, pool, classifier)."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        sites = network_blocks(spec)
        self.stem = Block(sites[0].block, sites[0].where)
        self.stages = nn.ModuleList(nn.Sequential(*(Block(s.block, s.where) for s in stage))
                                    for stage in stage_sites(sites))
        self.head = Block(sites[-1].block, sites[-1].where)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling (the head conv's output)."""
        return self.head.head(self._body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._body(x))

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def blocks(self) -> Iterator[Block]:
        """The body's blocks in order (stage by stage)."""
        for stage in self.stages:
            yield from stage

    def set_residual(self, enabled: bool) -> None:
        """Switch the residual links of every block that has one on or off (Zen-Score scores
        a network with them off)."""
        for b in self.blocks():
            b.residual = bool(enabled) and b.block.residual

    def batch_norms(self) -> Iterator[tuple[str, nn.BatchNorm2d]]:
        return ((n, m) for n, m in self.named_modules() if isinstance(m, nn.BatchNorm2d))


def build_torch(spec: NetworkSpec, seed: int = 0) -> Network:
    """The torch model of `spec` in eval mode, weights initialised from `seed`."""
    torch.manual_seed(seed)
    return Network(spec).eval()


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
