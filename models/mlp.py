"""The Batch Normalization paper's MNIST network (Ioffe & Szegedy 2015, section 4.1): the image
flattened, `depth` fully connected hidden layers of `width` units, each followed by its
nonlinearity (sigmoid in the paper), and a linear classifier.

With BN, each hidden layer computes act(BN(W u)): the normalization sits between the linear map
and the nonlinearity, and the layer's bias is dropped, as BN's beta takes its place (the paper,
section 3.2). Such a BN follows a Gemm, so the export folds it exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn


class HiddenLayer(nn.Module):
    """linear -> [BN] -> activation; `pre_activation` is what the activation receives."""

    def __init__(
        self, in_features: int, units: int, norm: bool, act_layer: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, units, bias=not norm)
        self.norm = nn.BatchNorm1d(units) if norm else nn.Identity()
        self.act = act_layer()

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pre_activation(x))


class MLP(nn.Module):
    """See the module docstring. Initialization: each hidden weight drawn from N(0, gain^2 /
    fan_in) (LeCun's, with the activation's gain: sqrt(2) for ReLU, 1 for sigmoid), the
    classifier's from N(0, 1 / fan_in), biases 0."""

    def __init__(
        self,
        in_features: int,
        depth: int,
        width: int,
        num_classes: int,
        *,
        norm: bool,
        act_layer: Callable[[], nn.Module],
        gain: float,
    ) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(
            HiddenLayer(a, b, norm, act_layer) for a, b in itertools.pairwise(sizes)
        )
        self.fc = nn.Linear(width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                std = (1.0 if module is self.fc else gain) / math.sqrt(module.in_features)
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        for layer in self.hidden:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def last_pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """What the last hidden layer's nonlinearities receive, [N, width]: the paper's Figure 1
        (b, c) follows one of these units over training."""
        x = x.reshape(len(x), -1)
        for layer in self.hidden[:-1]:
            x = layer(x)
        return self.hidden[-1].pre_activation(x)
