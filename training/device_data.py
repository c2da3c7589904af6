"""The whole data set on the training device, as uint8 tensors, with its standardization."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skipfold.training.augment import standardize
from skipfold.training.datasets import ImageDataset


@dataclass(frozen=True)
class DeviceData:
    train_x: torch.Tensor  # uint8 [N, 3, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor  # per channel, 0..1 scale
    std: torch.Tensor
    per_image: bool

    @classmethod
    def load(
        cls,
        data: ImageDataset,
        device: torch.device,
        mean: list[float],
        std: list[float],
        per_image: bool,
        *,
        train: bool = True,
    ) -> DeviceData:
        def images(array) -> torch.Tensor:
            return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous().to(device)

        empty = torch.zeros((0,), dtype=torch.int64, device=device)
        return cls(
            train_x=images(data.train_images) if train else empty,
            train_y=torch.from_numpy(data.train_labels).to(device) if train else empty,
            test_x=images(data.test_images),
            test_y=torch.from_numpy(data.test_labels).to(device),
            mean=torch.tensor(mean, device=device),
            std=torch.tensor(std, device=device),
            per_image=per_image,
        )

    def standardize(self, images: torch.Tensor) -> torch.Tensor:
        return standardize(images, self.mean, self.std, self.per_image)
