"""Networks written here (not with skipfold's model code), small enough for a CPU, in the layouts
other people train: post- and pre-activation ResNets (ResNet-18's basic blocks, ResNet-50's
bottlenecks), a MobileNetV2, a DenseNet-BC and a VGG with BN. Each with random BN statistics
(negative, zero and 1e-8 gammas among them), exported by torch.onnx with every
BatchNormalization kept as a node."""

from pathlib import Path

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet's post-activation block: conv-BN-ReLU-conv-BN, + shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


class PreActBlock(nn.Module):
    """He et al. 2016's pre-activation block: BN-ReLU-conv-BN-ReLU-conv, + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.down = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(x))
        shortcut = self.down(y) if self.down is not None else x
        y = self.conv2(torch.relu(self.bn2(self.conv1(y))))
        return y + shortcut


def resnet18(pre_activation: bool = False) -> nn.Module:
    """ResNet-18's layout (4 stages of 2 blocks) at widths 16-128, for 32 x 32 images."""
    block = PreActBlock if pre_activation else BasicBlock
    layers, cin = [], 16
    for i, width in enumerate((16, 32, 64, 128)):
        layers += [block(cin, width, 1 if i == 0 else 2), block(width, width, 1)]
        cin = width
    stem = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
    stem += [] if pre_activation else [nn.BatchNorm2d(16), nn.ReLU()]
    head = [nn.BatchNorm2d(128), nn.ReLU()] if pre_activation else []
    return nn.Sequential(
        *stem, *layers, *head, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)
    )


class Bottleneck(nn.Module):
    """ResNet-50's post-activation block: 1x1 conv-BN-ReLU, 3x3 conv-BN-ReLU, 1x1 conv-BN (4x
    the width), + shortcut (a strided 1x1 conv-BN where the shape changes), ReLU."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


def resnet50() -> nn.Module:
    """ResNet-50's layout (stages of 3, 4, 6 and 3 bottlenecks) at widths 8-64, for 32 x 32."""
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)]
    layers.append(nn.ReLU())
    cin = 16
    for i, (blocks, width) in enumerate(zip((3, 4, 6, 3), (8, 16, 32, 64), strict=True)):
        for j in range(blocks):
            layers.append(Bottleneck(cin, width, 2 if i and not j else 1))
            cin = 4 * width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project, each with BN; ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 2), InvertedResidual(24, 24, 1),
        InvertedResidual(24, 32, 2), nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64),
        nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


class DenseLayer(nn.Module):
    """DenseNet-BC's layer: BN-ReLU-1x1 conv-BN-ReLU-3x3 conv, its output concatenated."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def densenet_bc(growth: int = 8) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
    channels = 16
    for stage in range(2):
        for _ in range(3):
            layers.append(DenseLayer(channels, growth))
            channels += growth
        if stage == 0:  # the transition: BN-ReLU-1x1 conv (halving the channels), pooling
            layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels // 2, 1)]
            layers.append(nn.AvgPool2d(2))
            channels //= 2
    layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(channels, 10))


def vgg11_bn() -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for width in (16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        layers += [nn.Conv2d(cin, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128, 10))


NETWORKS = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "preact_resnet18": lambda: resnet18(pre_activation=True),
    "mobilenet_v2": mobilenet_v2,
    "densenet_bc": densenet_bc,
    "vgg11_bn": vgg11_bn,
}


def with_random_statistics(
    net: nn.Module, seed: int = 0, typical: bool = False, signed: bool = False
) -> nn.Module:
    """Random gammas (-1.5, 0 and 1e-8 among them; `typical`: from 0.5 to 1.5, as trained
    networks mostly have; `signed`: those, negated in two channels of each BN drawn at random),
    betas, means and variances; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            gamma = torch.randn(channels, generator=generator)
            gamma[:3] = torch.tensor([-1.5, 0.0, 1e-8])
            if typical or signed:
                gamma = 0.5 + torch.rand(channels, generator=generator)
            if signed:
                gamma[torch.randperm(channels, generator=generator)[:2]] *= -1
            module.weight.data, module.bias.data = gamma, torch.randn(channels, generator=generator)
            module.running_mean = 0.5 * torch.randn(channels, generator=generator)
            module.running_var = 0.5 + torch.rand(channels, generator=generator)
    return net.eval()


def export(net: nn.Module, path: Path, size: int = 32, dynamic_batch: bool = True) -> Path:
    """torch.onnx's TorchScript exporter with constant folding off: every BN stays a node."""
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(
        net, (images,), str(path), input_names=["input"], output_names=["output"], dynamo=False,
        do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL, dynamic_axes=axes,
    )  # fmt: skip
    return path
