"""The demo's training sizes, and the choice of one for the machine the demo finds.

The CPUs this project runs on differ by ten times, so one recipe cannot be ready in about
three minutes on all of them. The demo measures the training step's speed on this machine
(`training.speed`) and takes the largest size whose estimated time for both trainings fits
its budget; the smallest is the floor. Every size reaches 98% or more on `shapes` for both
variants, across seeds (docs/results.md, "The demo's sizes"), so only the time changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# `shapes`' split (training.datasets.load_dataset): the estimate counts its images
SHAPES_TRAIN_IMAGES = 10_000
SHAPES_TEST_IMAGES = 2_000
# an evaluation image costs about a third of a training one (forward only)
EVALUATION_COST = 1 / 3
DEFAULT_BUDGET_S = 120.0


@dataclass(frozen=True)
class DemoSize:
    """One recipe the demo can train both variants with: `TrainConfig` fields."""

    name: str
    recipe: dict[str, Any] = field(hash=False)

    @property
    def epochs(self) -> int:
        return int(self.recipe["epochs"])

    def estimated_seconds(self, images_per_s: float, variants: int = 2) -> float:
        """Seconds of training steps and evaluation for `variants` runs at this speed."""
        train = min(SHAPES_TRAIN_IMAGES, self.recipe.get("train_limit") or SHAPES_TRAIN_IMAGES)
        test = min(SHAPES_TEST_IMAGES, self.recipe.get("test_limit") or SHAPES_TEST_IMAGES)
        per_epoch = train + EVALUATION_COST * test
        return variants * self.epochs * per_epoch / images_per_s


# Largest first. The first is `skipfold train`'s defaults at WRN-10-2 for 3 epochs (issue 14).
# WRN-10-1 computes 2.5 times faster; it needs lr 0.02 (at 0.03 SkipInit collapsed for 1 seed
# in 3). The smallest trains 2 epochs with the lighter crop that suits short runs.
SIZES: tuple[DemoSize, ...] = (
    DemoSize("WRN-10-2, 3 epochs", {"depth": 10, "width": 2, "epochs": 3}),
    DemoSize("WRN-10-1, 3 epochs", {"depth": 10, "width": 1, "epochs": 3, "lr": 0.02}),
    DemoSize(
        "WRN-10-1, 2 epochs",
        {"depth": 10, "width": 1, "epochs": 2, "lr": 0.02, "crop_padding": 2},
    ),
)


@dataclass(frozen=True)
class Reading:
    """One size's measured speed and the estimate for both trainings it gives."""

    size: DemoSize
    images_per_s: float
    estimated_s: float

    def describe(self, budget_s: float) -> str:
        fits = "within" if self.estimated_s <= budget_s else "over"
        return (
            f"{self.size.name}: the training step runs at {self.images_per_s:,.0f} images/s "
            f"here, about {self.estimated_s:.0f} s for both variants ({fits} the "
            f"{budget_s:.0f} s budget)"
        )


@dataclass(frozen=True)
class Choice:
    size: DemoSize
    readings: tuple[Reading, ...]  # largest size first, up to the chosen one

    def describe(self, budget_s: float) -> list[str]:
        lines = [reading.describe(budget_s) for reading in self.readings]
        if self.readings[-1].estimated_s > budget_s:
            lines.append(f"none fits: training the smallest, {self.size.name}")
        else:
            lines.append(f"training {self.size.name}")
        return lines


def choose_size(
    speed_of: Callable[[DemoSize], float],
    budget_s: float = DEFAULT_BUDGET_S,
    sizes: Sequence[DemoSize] = SIZES,
) -> Choice:
    """The largest of `sizes` (largest first) whose estimate for both trainings fits
    `budget_s`, else the smallest. `speed_of(size)` measures images per second, only until
    one fits."""
    if not sizes:
        raise ValueError("no demo sizes to choose from")
    readings: list[Reading] = []
    for size in sizes:
        speed = speed_of(size)
        readings.append(Reading(size, speed, size.estimated_seconds(speed)))
        if readings[-1].estimated_s <= budget_s:
            break
    return Choice(readings[-1].size, tuple(readings))
