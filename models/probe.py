"""Signal propagation at initialization (De & Smith 2020, section 2).

Feed N(0, 1) images through a freshly initialised network (BatchNorm in training mode, as at
the first step) and record, for every residual block, the variance of the skip path, of the
residual branch (after alpha) and of the block's output. The paper's claims then read off the
numbers: without normalization every block doubles the variance; with BatchNorm the branch
keeps variance ~1 while the skip path grows linearly, so deep blocks start near the identity;
with SkipInit (alpha = 0) every block is exactly the identity.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from skipfold.models.build import build_model
from skipfold.models.spec import ALPHA_VARIANTS, VARIANT_NAMES
from skipfold.models.wide_resnet import WideResNet


def variance(x: torch.Tensor) -> float:
    """Variance over every element (batch, channel, space).

    This is the average channel variance plus the variance of the channel means, the two terms
    the paper plots separately. Their sum is what He initialization preserves and what the
    analysis predicts: about 1 for a BatchNorm branch, doubling per unnormalized block. The
    channel variance alone would miss the channel means that every ReLU -> conv creates (about a
    third of the total here).
    """
    return float(x.double().var(unbiased=False))


def _is_positively_homogeneous(model: WideResNet) -> bool:
    """True when every block satisfies block(c*x) = c*block(x) for c > 0.

    Holds for ReLU networks with no normalization and all biases zero (every unnormalized
    variant at initialization); then activations can be rescaled between blocks exactly.
    """
    for module in model.stages.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return False
        if isinstance(module, nn.Conv2d) and module.bias is not None and module.bias.any():
            return False
    return True


def _scaled(value: float, log2_scale: int) -> float:
    """value * 4**log2_scale (the variance of activations stored divided by 2**log2_scale)."""
    try:
        return math.ldexp(value, 2 * log2_scale)
    except OverflowError:
        return math.inf


@torch.no_grad()
def measure(
    model: WideResNet, inputs: torch.Tensor, *, progress: bool = False, desc: str = "probe"
) -> list[dict[str, Any]]:
    """Per-block skip, branch and output variance of `model` on `inputs`, in the model's mode.

    For positively homogeneous models the running activation is divided by a power of two after
    every block (exact in floating point) and the exponent is carried, so the variance of an
    unnormalized WRN-1000 (about 2**500) is reported instead of overflowing float32.
    """
    rescale = _is_positively_homogeneous(model)
    log2_scale = 0
    x = model.stem(inputs)
    rows = []
    blocks = tqdm(model.blocks(), desc=desc, unit="block", disable=not progress, leave=False)
    for index, (stage, block) in enumerate(blocks, start=1):
        skip, branch = block.paths(x)
        out = (skip + branch) * block.output_scale
        rows.append(
            {
                "index": index,
                "stage": stage,
                "shortcut": "identity" if block.shortcut is None else "conv",
                "skip_var": _scaled(variance(skip), log2_scale),
                "branch_var": _scaled(variance(branch), log2_scale),
                "out_var": _scaled(variance(out), log2_scale),
            }
        )
        if rescale:
            peak = float(out.abs().max())
            if math.isfinite(peak) and peak > 0:
                exponent = math.frexp(peak)[1]
                out = torch.ldexp(out, torch.tensor(-exponent, dtype=out.dtype))
                log2_scale += exponent
        x = out
    return rows


def probe(
    variant: str,
    depth: int,
    width: int,
    *,
    batch: int = 256,
    seed: int = 0,
    progress: bool = False,
    **options: float,
) -> dict[str, Any]:
    """Build a variant at initialization and measure it on a batch of N(0, 1) 32x32 images."""
    if batch < 2:
        raise ValueError(f"batch must be at least 2 (variances need samples), got {batch}")
    torch.manual_seed(seed)
    model = build_model(variant, depth, width, **options)
    model.train()  # BatchNorm uses batch statistics, as at the first training step
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()  # dropout noise is not part of signal propagation at init
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, 32, 32, generator=generator)
    return {
        "variant": variant,
        "depth": depth,
        "width": width,
        "alpha_init": model.spec.alpha_init,
        "batch": batch,
        "seed": seed,
        "blocks": measure(model, inputs, progress=progress, desc=f"{variant} WRN-{depth}-{width}"),
    }


def probe_all(depth: int, width: int, **kwargs: Any) -> list[dict[str, Any]]:
    """`probe` for every variant; `alpha_init` applies to the variants that have an alpha."""
    alpha_init = kwargs.pop("alpha_init", None)
    results = []
    for variant in VARIANT_NAMES:
        has_alpha = alpha_init is not None and variant in ALPHA_VARIANTS
        extra = {"alpha_init": alpha_init} if has_alpha else {}
        results.append(probe(variant, depth, width, **kwargs, **extra))
    return results
