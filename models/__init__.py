"""The model family: `build_model(variant, depth, width, ...)` (Wide-ResNets and the BN paper's
MLP) and its building blocks.

Importing the package costs no torch: `skipfold.models.spec` (names, `ModelSpec`) is torch-free,
and the torch modules load on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "FlipAveraged": "skipfold.models.flip_averaged",
    "VARIANTS": "skipfold.models.wide_resnet",
    "PreActBlock": "skipfold.models.wide_resnet",
    "WideResNet": "skipfold.models.wide_resnet",
    "MLP": "skipfold.models.mlp",
    "ARCHITECTURES": "skipfold.models.build",
    "build_model": "skipfold.models.build",
    "build_from_spec": "skipfold.models.build",
    "ModelSpec": "skipfold.models.spec",
    "OPTIONS": "skipfold.models.spec",
    "VARIANT_NAMES": "skipfold.models.spec",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
