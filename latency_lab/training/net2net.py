"""Function-preserving transforms (Net2Net) for MBConv networks with SE and swish.

`transfer(parent, child_spec)` builds the torch model of `child_spec`, a network that is the
parent grown in width (more channels in a stage, the stem or the head) and in depth (more
blocks at the end of a stage), from the parent's trained model, so that in eval mode the
child computes the parent's function: child(x) == parent(x) up to float rounding (tested to
1e-5 for every one- and two-stage RBIS step of EfficientNet-B0). RBIS's steps are exactly such
growths (`latency_lab.search.scaling.rbis_step`).

Widening (Chen, Goodfellow and Shlens 2016, Net2WiderNet), made exact for these blocks:

- Every widened tensor gets a `ChannelMap`: new channel b is a copy of old channel src[b]
  (the old channels keep their places; each new one copies a randomly chosen old one). The
  *producer* of the tensor copies rows (conv output channels, batch-norm gamma, beta, running
  mean and variance, SE biases); every *consumer* gathers its input columns by src and
  multiplies them by frac[b], where the fractions of the copies of one old channel sum to 1.
  A depthwise conv, a batch norm, swish and the SE gate act per channel, so copies stay copies
  through them.
- Widening stage i widens the residual stream of the whole stage with one map: every block's
  project conv and batch norm (the producers, added together by the residual links), the
  expand convs of the stage's later blocks and of the next stage's first block, or the head
  conv (the consumers). A block whose input grows also grows its expanded width
  (round(c_in x expansion)) and its SE width (int(c_in x se_ratio)); those get maps of their
  own: expand conv and depthwise rows, SE reduce rows and expand columns, project columns.
  With expansion 1 there is no expand conv and the depthwise conv works on the stream itself.
- Net2Net splits a unit's outgoing weights evenly over its copies, so the copies receive equal
  gradients and stay equal for ever (its code adds noise to break that, and then the function
  is no longer preserved). Here the fractions of a channel's copies are drawn at random
  (uniform weights in [0.5, 1.5], normalised to sum 1): the sum is exact, and the copies learn
  apart from the first step of fine-tuning.

Deepening: a new block at the end of stage i (stride 1, c_in == c_out, so it has a residual
link) whose residual branch outputs exactly zero: its project batch norm gets gamma = 0 and
beta = 0, so the block is x + 0 in eval and in train mode (batch statistics are multiplied by
zero too). An identity conv would not do (swish and batch norm sit between the convs), nor
would Net2DeeperNet's identity initialisation of a plain conv layer. The rest of the branch is
a copy of the block before it when that has the same shape (a useful start: gamma receives a
gradient at once, the others after it moves), else the child's seeded initialisation.

What cannot be preserved is said, not hidden: a width step that makes a block's input and
output widths equal where they differed (or the reverse) adds or removes a residual link, and
the report (`TransferReport.exact` False, with the reason) says so; the evaluator records the
measured deviation next to the accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from latency_lab.models.build_torch import Block, Network, build_torch
from latency_lab.errors import UserError
from latency_lab.network.spec import NetworkSpec


class Net2NetError(UserError):
    """A child that is no growth of its parent (narrower, shallower, other kernels)."""


@dataclass(frozen=True)
class ChannelMap:
    """New channel b copies old channel src[b]; consumers scale its input by frac[b]."""

    src: torch.Tensor
    frac: torch.Tensor

    @staticmethod
    def identity(n: int) -> "ChannelMap":
        return ChannelMap(torch.arange(n), torch.ones(n))

    @staticmethod
    def widen(n_old: int, n_new: int, rng: np.random.Generator) -> "ChannelMap":
        if n_new < n_old:
            raise Net2NetError(f"cannot narrow {n_old} channels to {n_new}")
        if n_new == n_old:
            return ChannelMap.identity(n_old)
        extra = n_new - n_old
        picked = rng.choice(n_old, size=extra, replace=extra > n_old)
        src = np.concatenate([np.arange(n_old), picked])
        weights = np.ones(n_new)
        copied = np.bincount(src, minlength=n_old) > 1
        split = copied[src]                          # every copy of a copied channel
        weights[split] = rng.uniform(0.5, 1.5, size=int(split.sum()))
        frac = weights / np.bincount(src, weights=weights, minlength=n_old)[src]
        return ChannelMap(torch.as_tensor(src), torch.as_tensor(frac, dtype=torch.float32))

    @property
    def identity_like(self) -> bool:
        return bool(torch.equal(self.src, torch.arange(len(self.src))))


@dataclass
class TransferReport:
    exact: bool = True
    notes: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    new_blocks: list[str] = field(default_factory=list)

    def inexact(self, why: str) -> None:
        self.exact = False
        self.notes.append(why)


# -- copying weights through maps ----------------------------------------------------------------
def _gather(t: torch.Tensor, rows: ChannelMap | None, cols: ChannelMap | None) -> torch.Tensor:
    if rows is not None:
        t = t.index_select(0, rows.src)
    if cols is not None:
        t = t.index_select(1, cols.src)
        shape = [1, -1] + [1] * (t.ndim - 2)
        t = t * cols.frac.to(t.dtype).view(shape)
    return t


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, rows: ChannelMap | None,
               cols: ChannelMap | None) -> None:
    """Output channels by `rows`; input channels gathered and split by `cols` (not for a
    depthwise conv, whose one input channel per output follows its row)."""
    depthwise = src.groups > 1
    dst.weight.copy_(_gather(src.weight, rows, None if depthwise else cols))
    if src.bias is not None:
        dst.bias.copy_(_gather(src.bias, rows, None))


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, rows: ChannelMap) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(_gather(getattr(src, name), rows, None))
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _copy_convbn(dst, src, rows: ChannelMap, cols: ChannelMap | None) -> None:
    _copy_conv(dst.conv, src.conv, rows, cols)
    _copy_bn(dst.bn, src.bn, rows)


def _maps(n_old: int, n_new: int, rng, what: str, report: TransferReport) -> ChannelMap:
    m = ChannelMap.widen(n_old, n_new, rng)
    if n_new != n_old:
        report.widened.append(f"{what} {n_old}->{n_new}")
    return m


def _transfer_block(dst: Block, src: Block, m_in: ChannelMap, m_out: ChannelMap, rng,
                    report: TransferReport) -> None:
    """An MBConv block grown in its input and output widths (mid and SE widths follow)."""
    p, c = src.block, dst.block
    where = dst.where
    if (p.kernel, p.stride, p.expansion) != (c.kernel, c.stride, c.expansion):
        raise Net2NetError(f"{where}: kernel, stride or expansion changed "
                           f"({p.name} -> {c.name}); not a width or depth step")
    if p.residual != c.residual:
        report.inexact(f"{where}: the residual link {'appears' if c.residual else 'vanishes'} "
                       f"({p.c_in}->{p.c_out} becomes {c.c_in}->{c.c_out} channels)")
    has_expand = hasattr(src, "expand")
    if has_expand != hasattr(dst, "expand"):
        report.inexact(f"{where}: the expand conv appears or vanishes; left as initialised")
        m_mid = _maps(p.c_mid, c.c_mid, rng, f"{where} expanded", report)
    elif has_expand:
        m_mid = _maps(p.c_mid, c.c_mid, rng, f"{where} expanded", report)
        _copy_convbn(dst.expand, src.expand, m_mid, m_in)
    else:
        m_mid = m_in                      # the depthwise conv works on the stream itself
    _copy_convbn(dst.dw, src.dw, m_mid, None)
    if hasattr(src, "se") != hasattr(dst, "se"):
        raise Net2NetError(f"{where}: squeeze-and-excitation appears or vanishes")
    if hasattr(src, "se"):
        m_se = _maps(p.se_channels, c.se_channels, rng, f"{where} SE", report)
        _copy_conv(dst.se.reduce, src.se.reduce, m_se, m_mid)
        _copy_conv(dst.se.expand, src.se.expand, m_mid, m_se)
    _copy_convbn(dst.project, src.project, m_out, m_mid)


def _identity_block(dst: Block, before: Block | None, report: TransferReport) -> None:
    """A new residual block whose branch outputs zero (see the module docstring)."""
    if before is not None and before.block == dst.block:
        dst.load_state_dict(before.state_dict())
    dst.project.bn.weight.zero_()
    dst.project.bn.bias.zero_()
    report.new_blocks.append(dst.where)


def transfer(parent: Network, child_spec: NetworkSpec, seed: int = 0,
             init_seed: int = 0) -> tuple[Network, TransferReport]:
    """The child's model with the parent's weights carried over (see the module docstring).

    `seed` draws the channel maps and split fractions; `init_seed` the child's initialisation
    of what has no counterpart (kept only where nothing is copied over it). The child is
    returned in eval mode, like `build_torch`.
    """
    p_spec = parent.spec
    _check_growth(p_spec, child_spec)
    rng = np.random.default_rng(seed)
    report = TransferReport()
    child = build_torch(child_spec, seed=init_seed)
    with torch.no_grad():
        m = _maps(p_spec.stem.width, child_spec.stem.width, rng, "stem", report)
        _copy_convbn(child.stem.stem, parent.stem.stem, m, None)
        for i, (p_stage, c_stage) in enumerate(zip(parent.stages, child.stages)):
            m_out = _maps(p_spec.stages[i].width, child_spec.stages[i].width, rng,
                          f"stage {i}", report)
            for j, dst in enumerate(c_stage):
                if j < len(p_stage):
                    _transfer_block(dst, p_stage[j], m if j == 0 else m_out, m_out, rng, report)
                else:
                    _identity_block(dst, c_stage[j - 1], report)
            m = m_out
        m_head = _maps(p_spec.head_width, child_spec.head_width, rng, "head", report)
        _copy_convbn(child.head.head, parent.head.head, m_head, m)
        child.head.classifier.weight.copy_(_gather(parent.head.classifier.weight, None, m_head))
        child.head.classifier.bias.copy_(parent.head.classifier.bias)
    return child.eval(), report


def _check_growth(parent: NetworkSpec, child: NetworkSpec) -> None:
    def fail(why: str):
        raise Net2NetError(f"{child.name} ({child.fingerprint}) is no growth of {parent.name} "
                           f"({parent.fingerprint}): {why}")
    if len(parent.stages) != len(child.stages):
        fail("a different number of stages")
    if (parent.activation, parent.num_classes) != (child.activation, child.num_classes):
        fail("another activation or number of classes")
    if (parent.stem.kernel, parent.stem.stride) != (child.stem.kernel, child.stem.stride):
        fail("another stem")
    if child.stem.width < parent.stem.width or child.head_width < parent.head_width:
        fail("a narrower stem or head")
    for i, (p, c) in enumerate(zip(parent.stages, child.stages)):
        if c.width < p.width or c.depth < p.depth:
            fail(f"stage {i} is narrower or shallower ({p.width}x{p.depth} -> {c.width}x{c.depth})")
        if c.blocks[:p.depth] != p.blocks or c.se_ratio != p.se_ratio:
            fail(f"stage {i}'s blocks changed (kernel, expansion, stride or SE)")


def max_deviation(parent: nn.Module, child: nn.Module, resolution: int, batch: int = 4,
                  seed: int = 0) -> float:
    """max |child(x) - parent(x)| over a seeded N(0, 1) batch, both in eval mode."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 3, resolution, resolution), generator=g)
    was = parent.training, child.training
    parent.eval(), child.eval()
    with torch.no_grad():
        d = (child(x) - parent(x)).abs().max().item()
    parent.train(was[0]), child.train(was[1])
    return d


__all__ = ["transfer", "TransferReport", "ChannelMap", "Net2NetError", "max_deviation"]
