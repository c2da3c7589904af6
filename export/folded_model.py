"""The network that folding produces: convolutions, ReLUs, residual additions, pooling, linear.

A folded BN network and a folded SkipInit network of the same depth and width are instances of
the same modules with the same shapes, so their graphs match op for op. The only extra ops are
the per-channel `sign` (a Mul) and `shift` (an Add) before a ReLU, and they exist only where a
BN's scale is zero or negative, or too small for its shift to ride on the residual stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActivation(nn.Module):
    """x -> relu(x * sign + shift); sign and shift are per channel and usually absent."""

    def __init__(self, sign: torch.Tensor | None, shift: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("sign", None if sign is None else sign.view(1, -1, 1, 1))
        self.register_buffer("shift", None if shift is None else shift.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sign is not None:
            x = x * self.sign
        if self.shift is not None:
            x = x + self.shift
        return F.relu(x)


class FoldedBlock(nn.Module):
    """pre = preact(x); out = skip + conv2(relu(conv1(pre))), skip = x or shortcut(pre)."""

    def __init__(
        self,
        preact: PreActivation,
        conv1: nn.Conv2d,
        conv2: nn.Conv2d,
        shortcut: nn.Conv2d | None,
    ) -> None:
        super().__init__()
        self.preact = preact
        self.conv1 = conv1
        self.conv2 = conv2
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)
        skip = x if self.shortcut is None else self.shortcut(pre)
        return skip + self.conv2(F.relu(self.conv1(pre)))


class FoldedWideResNet(nn.Module):
    """stem -> blocks -> preact -> global average pool -> linear."""

    def __init__(
        self,
        stem: nn.Conv2d,
        blocks: list[FoldedBlock],
        head_preact: PreActivation,
        fc: nn.Linear,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head_preact = head_preact
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.head_preact(x).mean((2, 3)))
