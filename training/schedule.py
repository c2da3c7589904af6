"""Learning-rate schedules as functions of training progress, so any epoch count works."""

from __future__ import annotations

import math

SCHEDULES = ("skipinit", "wrn-step", "cosine", "constant")


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base learning rate at `progress` in [0, 1) of training.

    skipinit: the SkipInit paper's 200-epoch recipe scaled to any length: constant for the first
        half, then halved every 5% (every 10 of 200 epochs).
    wrn-step: the Wide-ResNet paper's steps, x0.2 at 30%, 60% and 80% (epochs 60, 120, 160 of 200).
    cosine: half a cosine from 1 to 0. constant: 1.
    """
    if schedule == "skipinit":
        if progress < 0.5:
            return 1.0
        return 0.5 ** (math.floor((progress - 0.5) / 0.05 + 1e-9) + 1)
    if schedule == "wrn-step":
        return 0.2 ** sum(progress >= m for m in (0.3, 0.6, 0.8))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def learning_rate(
    base_lr: float, schedule: str, step: int, total_steps: int, warmup_steps: int = 0
) -> float:
    """The learning rate at `step` (0-based): the schedule times an optional linear warm-up."""
    lr = base_lr * lr_factor(schedule, step / total_steps)
    if step < warmup_steps:
        lr *= (step + 1) / warmup_steps
    return lr
