"""Pre-activation Wide-ResNets (Zagoruyko & Komodakis 2016) with BatchNorm or SkipInit.

WRN-depth-width: depth = 6N + 4 (N blocks in each of three stages), a 3x3 stem conv with 16
channels, stages of widths 16k, 32k, 64k at strides 1, 2, 2, then the final activation, global
average pooling and a linear classifier. The normalization, the convolution bias and the
residual-branch scalar are passed in, so one network covers all four variants of the papers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from skipfold.models.spec import check_depth

NormLayer = Callable[[int], nn.Module]


@dataclass(frozen=True)
class VariantSpec:
    """What distinguishes one variant from another."""

    norm_layer: NormLayer
    conv_bias: bool
    description: str
    output_scale: float = 1.0  # every block's output (skip + branch) is multiplied by it


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


VARIANTS: dict[str, VariantSpec] = {
    "bn": VariantSpec(nn.BatchNorm2d, False, "BatchNorm pre-activation WRN (the WRN reference)"),
    "skipinit": VariantSpec(
        _no_norm, False, "no normalization; branch scaled by a learnable alpha (init 0)"
    ),
    "skipinit-reg": VariantSpec(
        _no_norm, True, "Regularized SkipInit: + conv biases + dropout 0.6 before fc"
    ),
    "none": VariantSpec(_no_norm, False, "no normalization, no alpha: the baseline that explodes"),
    "none-scaled": VariantSpec(
        _no_norm,
        False,
        "none with every block's output divided by sqrt(2): a stable forward pass, the paper's "
        "control (not enough to train deep networks)",
        output_scale=2**-0.5,
    ),
}


class PreActBlock(nn.Module):
    """norm -> act -> conv3x3 -> norm -> act -> [dropout] -> conv3x3 [* alpha], plus the skip path.

    Where the shape changes, the skip path is a strided 1x1 conv on the pre-activated input,
    as in the WRN reference; otherwise it is the identity on the block's input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        norm_layer: NormLayer,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        conv_bias: bool = False,
        dropout: float = 0.0,
        alpha_init: float | None = None,
        output_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.output_scale = output_scale
        self.norm1 = norm_layer(in_channels)
        self.act1 = act_layer()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=conv_bias)
        self.norm2 = norm_layer(out_channels)
        self.act2 = act_layer()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=conv_bias)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=conv_bias)
        self.alpha: nn.Parameter | None
        if alpha_init is None:
            self.register_parameter("alpha", None)
        else:
            self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The skip path and the residual branch (after alpha); the block's output is their sum."""
        pre = self.act1(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        branch = self.conv2(self.dropout(self.act2(self.norm2(self.conv1(pre)))))
        if self.alpha is not None:
            branch = branch * self.alpha
        return skip, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip, branch = self.paths(x)
        if self.output_scale != 1.0:
            return (skip + branch) * self.output_scale
        return skip + branch


class WideResNet(nn.Module):
    """Pre-activation WRN-depth-width; see the module docstring for the layout."""

    def __init__(
        self,
        depth: int,
        width: int,
        num_classes: int = 10,
        *,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        conv_bias: bool = False,
        dropout: float = 0.0,
        alpha_init: float | None = None,
        head_dropout: float = 0.0,
        output_scale: float = 1.0,
    ) -> None:
        super().__init__()
        check_depth(depth)
        self.act_layer = act_layer
        blocks_per_stage = (depth - 4) // 6
        widths = (16 * width, 32 * width, 64 * width)
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=conv_bias)  # RGB
        stages = []
        channels = 16
        for stage_index, stage_width in enumerate(widths):
            blocks = []
            for block_index in range(blocks_per_stage):
                first = block_index == 0
                blocks.append(
                    PreActBlock(
                        channels,
                        stage_width,
                        2 if first and stage_index > 0 else 1,
                        norm_layer=norm_layer,
                        act_layer=act_layer,
                        conv_bias=conv_bias,
                        dropout=dropout,
                        alpha_init=alpha_init,
                        output_scale=output_scale,
                    )
                )
                channels = stage_width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_norm = norm_layer(channels)
        self.final_act = act_layer()
        self.head_dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialization (He et al. 2015) for every conv, in fan_in mode with the
        activation's gain (ReLU's sqrt(2); sigmoid's 1).

        fan_in keeps the variance of the forward signal constant through conv + ReLU, which is
        the quantity the SkipInit paper's analysis tracks (an unnormalized branch then has the
        variance of its input, so every block doubles the variance). Conv and fc biases start at
        0; BN keeps PyTorch's defaults (gamma 1, beta 0, momentum 0.1, eps 1e-5); fc weights keep
        PyTorch's default uniform init.
        """
        nonlinearity = "relu" if self.act_layer is nn.ReLU else "sigmoid"
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity=nonlinearity)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def blocks(self) -> list[tuple[int, PreActBlock]]:
        """Every residual block in order, with its stage number (1, 2, 3)."""
        return [(i + 1, b) for i, stage in enumerate(self.stages) for b in stage]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        # A mean over H and W, not AdaptiveAvgPool2d + flatten: it exports to one ReduceMean.
        x = self.final_act(self.final_norm(x)).mean((2, 3))
        return self.fc(self.head_dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
