"""How many images per second a config's training step runs at on this machine.

The demo sizes its trainings with it: the CPUs this project meets differ by ten times
(WRN-10-2 trains at about 100 images/s on a first-generation EPYC and 1,000 on an AVX-512 one),
and a recipe that is ready in a minute on one takes ten on the other. The probe runs the real
step (channels-last model, autocast as configured, cross-entropy, SGD) on random images of the
data's size, so its figure is the training's own, without loading any data.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from skipfold.models import build_model
from skipfold.training.config import TrainConfig
from skipfold.training.distributed import resolve_device
from skipfold.training.evaluation import autocast


def training_speed(
    config: TrainConfig,
    *,
    seconds: float = 1.5,
    warmup_steps: int = 2,
    min_steps: int = 3,
    classes: int = 10,
    image_size: int = 32,
) -> float:
    """Images per second of `config`'s training step, timed for about `seconds` after
    `warmup_steps` untimed ones (the first steps pay for allocations and kernel choices)."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(
        config.variant,
        config.depth,
        config.width,
        classes,
        **config.model_options((image_size, image_size)),
    ).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=1e-6, momentum=config.momentum, weight_decay=config.weight_decay
    )
    batch = config.batch_size
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    bf16 = config.bf16_on(device.type)
    model.train()

    def step() -> None:
        with autocast(device, bf16):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup_steps):
        step()
    _synchronize(device)
    steps, started = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - started < seconds:
        step()
        steps += 1
        if steps >= min_steps:
            _synchronize(device)
    return steps * batch / (time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
