"""Batched augmentation on the training device: no per-sample Python in the step loop.

The whole data set is one uint8 tensor [N, 3, H, W] on the device; every step gathers its
batch, pads by `crop_padding` pixels (4 by default; zeros, i.e. black), takes a random crop and
a random horizontal flip per image with tensor indexing, and standardizes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def standardize(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, per_image: bool = False
) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float32 x / 255, standardized, channels_last.

    Default: (x - mean) / std per channel with the training set's statistics. `per_image`:
    the SkipInit paper's per-image standardization (TensorFlow's): each image minus its own
    mean over all pixels and channels, divided by its own std (at least 1/sqrt(pixels * 3)).
    """
    x = images.float()
    if per_image:
        # On the 0..255 scale, where sums of pixels are exact in float32: a flat image
        # standardizes to exactly 0 in every framework, not to amplified rounding noise.
        floor = 255.0 / math.sqrt(x[0].numel())
        centred = x - x.mean((1, 2, 3), keepdim=True)
        spread = centred.square().mean((1, 2, 3), keepdim=True).sqrt().clamp_min(floor)
        x = centred / spread
    else:
        x = x.div_(255.0).sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return x.contiguous(memory_format=torch.channels_last)


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Pad, crop back to the original size at a random offset, flip half (unless not `flip`):
    per image, batched."""
    if padding == 0 and not flip:
        return images
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    mirrored = torch.rand(n, generator=generator, device=device) < 0.5
    mirrored &= flip
    cols = torch.arange(w, device=device)
    cols = torch.where(mirrored[:, None], w - 1 - cols, cols) + dx[:, None]  # [n, w]
    rows = torch.arange(h, device=device) + dy[:, None]  # [n, h]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
