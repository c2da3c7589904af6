"""The Wide-ResNet family: `build_model(variant, depth, width, ...)` and its building blocks."""

from models.wide_resnet import OPTIONS, VARIANTS, PreActBlock, WideResNet, build_model

__all__ = ["OPTIONS", "VARIANTS", "PreActBlock", "WideResNet", "build_model"]
