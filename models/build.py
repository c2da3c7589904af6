"""From a `ModelSpec` to torch modules: the one place that knows every architecture.

A registry, as timm's: `ARCHITECTURES[name]` builds a freshly initialized network from its spec;
the network carries the spec (`model.spec`), which the run folder and the model card store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from skipfold.models.mlp import MLP
from skipfold.models.spec import ModelSpec
from skipfold.models.wide_resnet import VARIANTS, WideResNet

ACTIVATION_LAYERS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
GAINS = {"relu": 2**0.5, "sigmoid": 1.0}  # torch.nn.init.calculate_gain's


def _wide_resnet(spec: ModelSpec) -> nn.Module:
    variant = VARIANTS[spec.variant]
    return WideResNet(
        spec.depth,
        spec.width,
        spec.num_classes,
        norm_layer=variant.norm_layer,
        act_layer=ACTIVATION_LAYERS[spec.activation],
        conv_bias=variant.conv_bias,
        dropout=spec.dropout,
        alpha_init=spec.alpha_init,
        head_dropout=spec.head_dropout,
        output_scale=variant.output_scale,
    )


def _mlp(spec: ModelSpec) -> nn.Module:
    height, width = spec.input_size or (0, 0)
    return MLP(
        3 * height * width,
        spec.depth,
        spec.width,
        spec.num_classes,
        norm=spec.variant == "bn",
        act_layer=ACTIVATION_LAYERS[spec.activation],
        gain=GAINS[spec.activation],
    )


ARCHITECTURES: dict[str, Callable[[ModelSpec], nn.Module]] = {"wrn": _wide_resnet, "mlp": _mlp}


def scale_initialization(model: nn.Module, scale: float) -> None:
    """Every conv and linear weight multiplied by `scale`: the BN paper's claim that BN makes
    training "less careful about parameter initialization" is tested by this knob."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                module.weight.mul_(scale)


def build_from_spec(spec: ModelSpec) -> nn.Module:
    """The network a `ModelSpec` describes (freshly initialized), carrying its spec."""
    model = ARCHITECTURES[spec.architecture](spec)
    if spec.init_scale != 1.0:
        scale_initialization(model, spec.init_scale)
    model.spec = spec
    return model


def build_model(
    variant: str, depth: int, width: int, num_classes: int = 10, **options: Any
) -> nn.Module:
    """Build a network of the family; `variant`: 'bn', 'skipinit', 'skipinit-reg', 'none' or
    'none-scaled' (the mlp: 'bn' or 'none').

    Options: `architecture` ('wrn', the default, or 'mlp', which needs `input_size` (H, W)),
    `activation` ('relu' or 'sigmoid'), `init_scale` (every weight's initial scale, default 1),
    `dropout` (inside every block, after the second activation; default 0), `alpha_init`
    (skipinit variants; default 0), `head_dropout` (before the classifier; default 0.6 for
    skipinit-reg, else 0). Invalid arguments raise a one-line ValueError.
    """
    return build_from_spec(ModelSpec.create(variant, depth, width, num_classes, **options))
