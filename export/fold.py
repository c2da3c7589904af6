"""Exact removal of every BatchNorm, and of SkipInit's alpha, from an eval-mode WRN.

In eval mode a BN is a per-channel affine map `y = s*x + t`. Three cases occur in a
pre-activation Wide-ResNet:

- BN right after a conv (`norm2`): the textbook fold into that conv's weight and bias.
- BN before a ReLU whose output feeds convolutions (`norm1` after the residual addition, and the
  final BN before pooling + linear). For s != 0, `relu(s*x + t) = |s| * relu(sign(s) * (x + t/s))`:
  the factor |s| moves into the input channels of the following conv or linear layer (zero
  padding stays exact because |s| * 0 = 0; pooling is linear), and the offset `t/s` is added to
  the residual stream itself by the layers that produce it (the stem's bias, each block's last
  conv bias), so nothing is left to compute. Where an offset would cost the stream precision
  (it dwarfs the stream's own scale, i.e. |s| is tiny), it stays as an explicit Add instead; a
  negative s leaves a Mul by -1 for its channels; s == 0 makes the channel the constant
  relu(t), kept exactly as `relu(0 * x + t)`.
- SkipInit: alpha scales the branch's last conv, weight and bias.

All folded parameters are computed in float64 and rounded to float32 once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from skipfold.export.folded_model import FoldedBlock, FoldedWideResNet, PreActivation
from skipfold.models.wide_resnet import WideResNet

# An offset rides on the residual stream only while it is at most this many times the stream's
# own scale at that point (|running mean| + running std): the stream then loses at most ~4 bits.
MAX_STREAM_OFFSET_RATIO = 16.0


@dataclass(frozen=True)
class Affine:
    """y = scale * x + shift, per channel (float64)."""

    scale: torch.Tensor
    shift: torch.Tensor


@dataclass(frozen=True)
class PreActFold:
    """relu(s*x + t) == input_scale * relu(sign * (x + offset) + shift), channel by channel.

    `offset` is added to the residual stream by its producers; `input_scale` goes into the
    consumers' input channels; `sign` and `shift` are None when they would be all ones / zeros.
    """

    input_scale: torch.Tensor
    offset: torch.Tensor
    sign: torch.Tensor | None
    shift: torch.Tensor | None


def bn_affine(norm: nn.Module, channels: int) -> Affine | None:
    """The eval-mode affine map of a normalization layer; None for nn.Identity (no norm)."""
    if isinstance(norm, nn.Identity):
        return None
    if not isinstance(norm, nn.BatchNorm2d):
        raise ValueError(f"cannot fold a {type(norm).__name__}: only BatchNorm2d and Identity")
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics")
    mean = norm.running_mean.detach().double()
    var = norm.running_var.detach().double()
    gamma = torch.ones(channels, dtype=torch.float64)
    beta = torch.zeros(channels, dtype=torch.float64)
    if norm.affine:
        gamma, beta = norm.weight.detach().double(), norm.bias.detach().double()
    scale = gamma / torch.sqrt(var + norm.eps)
    return Affine(scale, beta - scale * mean)


def _stream_scale(norm: nn.Module) -> torch.Tensor:
    """The typical magnitude of the stream a BN reads: |running mean| + running std."""
    mean = norm.running_mean.detach().double()
    return mean.abs() + torch.sqrt(norm.running_var.detach().double() + norm.eps)


def split_preactivation(norm: nn.Module, channels: int) -> PreActFold:
    """How `relu(norm(x))` folds: see the module docstring."""
    affine = bn_affine(norm, channels)
    ones = torch.ones(channels, dtype=torch.float64)
    zeros = torch.zeros(channels, dtype=torch.float64)
    if affine is None:
        return PreActFold(ones, zeros, None, None)
    s, t = affine.scale, affine.shift
    nonzero = s != 0
    safe_s = torch.where(nonzero, s, ones)
    offset = torch.where(nonzero, t / safe_s, zeros)
    on_stream = nonzero & (offset.abs() <= MAX_STREAM_OFFSET_RATIO * _stream_scale(norm))
    input_scale = torch.where(nonzero, s.abs(), ones)
    sign = torch.sign(s)
    # Off the stream, the offset becomes an explicit shift after the sign: sign*x + t/|s|.
    shift = torch.where(nonzero, t / input_scale, t)
    shift = torch.where(on_stream, zeros, shift)
    offset = torch.where(on_stream, offset, zeros)
    return PreActFold(
        input_scale,
        offset,
        None if bool((sign == 1).all()) else sign,
        None if bool((shift == 0).all()) else shift,
    )


def _as_float64_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A float64 copy of a conv, with a bias (zero if it had none)."""
    folded = copy.deepcopy(conv).double()
    if folded.bias is None:
        folded.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=torch.float64))
    return folded


@torch.no_grad()
def _scale_inputs(layer: nn.Conv2d | nn.Linear, scale: torch.Tensor) -> None:
    shape = (1, -1) + (1,) * (layer.weight.dim() - 2)
    layer.weight.mul_(scale.view(shape))


@torch.no_grad()
def _fold_output_affine(conv: nn.Conv2d, affine: Affine | None) -> None:
    """conv followed by a per-channel affine map -> one conv."""
    if affine is None:
        return
    conv.weight.mul_(affine.scale.view(-1, 1, 1, 1))
    conv.bias.copy_(affine.scale * conv.bias + affine.shift)


def _preact_module(fold: PreActFold) -> PreActivation:
    return PreActivation(
        None if fold.sign is None else fold.sign.float(),
        None if fold.shift is None else fold.shift.float(),
    )


@torch.no_grad()
def fold_model(model: WideResNet) -> FoldedWideResNet:
    """An equivalent network with no BatchNorm and no alpha (model's eval-mode function).

    The model is not modified. Dropout layers are dropped: they are the identity in eval mode.
    """
    blocks = [block for _, block in model.blocks()]
    if any(block.output_scale != 1.0 for block in blocks):
        raise ValueError(
            f"{model.spec.variant} is a training ablation of the SkipInit paper and is not "
            "exported; export bn, skipinit, skipinit-reg or none"
        )
    # Stream i (0 = the stem's output, i = block i's output) is read by exactly one BN: the
    # next block's norm1, or the final norm for the last stream.
    folds = [split_preactivation(b.norm1, b.conv1.in_channels) for b in blocks]
    folds.append(split_preactivation(model.final_norm, model.fc.in_features))

    stem = _as_float64_conv(model.stem)
    stem.bias += folds[0].offset
    folded_blocks = []
    for i, block in enumerate(blocks):
        fold, next_offset = folds[i], folds[i + 1].offset
        conv1 = _as_float64_conv(block.conv1)
        _scale_inputs(conv1, fold.input_scale)
        _fold_output_affine(conv1, bn_affine(block.norm2, block.conv2.in_channels))
        conv2 = _as_float64_conv(block.conv2)
        if block.alpha is not None:
            alpha = block.alpha.detach().double()
            conv2.weight *= alpha
            conv2.bias *= alpha
        shortcut = None
        if block.shortcut is not None:
            shortcut = _as_float64_conv(block.shortcut)
            _scale_inputs(shortcut, fold.input_scale)
            conv2.bias += next_offset
        else:
            # The identity skip already carries this stream's offset: add only the difference.
            conv2.bias += next_offset - fold.offset
        folded_blocks.append(FoldedBlock(_preact_module(fold), conv1, conv2, shortcut))
    fc = copy.deepcopy(model.fc).double()
    _scale_inputs(fc, folds[-1].input_scale)
    folded = FoldedWideResNet(stem, folded_blocks, _preact_module(folds[-1]), fc)
    return folded.float().eval()
