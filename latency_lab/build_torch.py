"""NetworkSpec -> torch `nn.Module`: the same network as `build_keras`, layer for layer.

For the GPU drivers (CUDA, ONNX -> TensorRT) and for evaluators that train or score networks.
Same parameter count as `complexity.params(spec)`; batch-norm epsilon and SE sizes as in Keras.
torch is imported when this module is.
"""

from __future__ import annotations

import torch
from torch import nn

from latency_lab.build_keras import BN_EPSILON
from latency_lab.complexity import expanded_channels, se_channels
from latency_lab.spec import NetworkSpec

_ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}


def _same_padding(kernel: int) -> int:
    # Keras 'same' pads (k-1)//2 on the left/top for odd kernels at stride 1, and for stride 2
    # pads asymmetrically depending on the input size; symmetric (k-1)//2 gives the same output
    # size ceil(in/stride) and the same work. Outputs differ at the border for stride 2 only.
    return (kernel - 1) // 2


class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, act: type | None,
                 groups: int = 1):
        layers = [nn.Conv2d(c_in, c_out, kernel, stride, _same_padding(kernel), groups=groups,
                            bias=False),
                  nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=0.01)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int, act: type):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: float, stride: int,
                 se_ratio: float, act: type, residual: bool = True):
        super().__init__()
        c_mid = expanded_channels(c_in, expansion)
        self.expand = ConvBN(c_in, c_mid, 1, 1, act) if c_mid != c_in else nn.Identity()
        self.depthwise = ConvBN(c_mid, c_mid, kernel, stride, act, groups=c_mid)
        self.se = SqueezeExcite(c_mid, se_channels(c_in, se_ratio), act) if se_ratio > 0 else nn.Identity()
        self.project = ConvBN(c_mid, c_out, 1, 1, None)
        self.residual = residual and stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class Network(nn.Module):
    """`residual=False` leaves out every skip connection (Zen-Score scores the plain network)."""

    def __init__(self, spec: NetworkSpec, residual: bool = True):
        super().__init__()
        act = _ACTIVATIONS[spec.activation]
        self.stem = ConvBN(3, spec.stem.width, spec.stem.kernel, spec.stem.stride, act)
        blocks, c = [], spec.stem.width
        for stage in spec.stages:
            for b in stage.blocks:
                blocks.append(MBConv(c, stage.width, b.kernel, b.expansion, b.stride,
                                     stage.se_ratio, act, residual))
                c = stage.width
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(c, spec.head_width, 1, 1, act)
        self.classifier = nn.Linear(spec.head_width, spec.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling (after the head conv, BN, activation)."""
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x).mean((2, 3)))


def build_torch(spec: NetworkSpec, seed: int = 0, residual: bool = True) -> Network:
    """The torch model of `spec` in eval mode, weights initialised from `seed`."""
    torch.manual_seed(seed)
    return Network(spec, residual).eval()


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
