"""Test loss and accuracy of an eval-mode network, on one process or shared over torchrun."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from skipfold.training.device_data import DeviceData
from skipfold.training.distributed import Distributed


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bfloat16 autocast when `bf16`, else plain float32 (`TrainConfig.bf16_on` decides)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def evaluate_model(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    data: DeviceData,
    batch_size: int = 500,
    *,
    bf16: bool = False,
) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on uint8 [N, 3, H, W] images, in eval mode."""
    model.eval()
    device = images.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    with torch.no_grad(), autocast(device, bf16):
        for start in range(0, len(images), batch_size):
            x = data.standardize(images[start : start + batch_size])
            y = labels[start : start + batch_size]
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    return float(loss_sum) / len(images), int(correct) / len(images)


WATCHED_PERCENTILES = (15, 50, 85)


def watched_unit(model: torch.nn.Module, data: DeviceData) -> dict[str, float]:
    """The BN paper's Figure 1 (b, c): the 15th, 50th and 85th percentiles, over the test images,
    of what the first unit of the last hidden layer's nonlinearity receives (eval mode), for
    networks that expose it (the mlp); {} for the others."""
    probe = getattr(model, "last_pre_activation", None)
    if probe is None:
        return {}
    model.eval()
    with torch.no_grad():
        values = torch.cat(
            [
                probe(data.standardize(data.test_x[start : start + 500]))[:, 0].float()
                for start in range(0, len(data.test_x), 500)
            ]
        )
    levels = torch.tensor([p / 100 for p in WATCHED_PERCENTILES], device=values.device)
    found = torch.quantile(values, levels).tolist()
    return {f"watched_p{p}": v for p, v in zip(WATCHED_PERCENTILES, found, strict=True)}


def evaluate_test_set(
    model: torch.nn.Module, data: DeviceData, ddp: Distributed, *, bf16: bool = False
) -> tuple[float, float]:
    """The whole test set, each rank taking every world_size-th image."""
    mine_x = data.test_x[ddp.rank :: ddp.world_size]
    mine_y = data.test_y[ddp.rank :: ddp.world_size]
    loss, accuracy = evaluate_model(model, mine_x, mine_y, data, bf16=bf16)
    if ddp.world_size == 1:
        return loss, accuracy
    sums = torch.tensor([loss * len(mine_x), accuracy * len(mine_x)], device=ddp.device)
    ddp.sum(sums)
    total = len(data.test_x)
    return float(sums[0]) / total, float(sums[1]) / total
