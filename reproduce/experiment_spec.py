"""What an experiment of `skipfold reproduce` is made of, torch-free: arms (the curves of a
paper's plot), presets (how big the grid is) and the experiment that puts them together. The
papers' experiments themselves are tables of these: `skipinit_paper.py`, `batchnorm_paper.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arm:
    """One curve: a variant, its alpha at initialization as a function of the depth, and the
    other settings that set it apart (the mlp, sigmoids, dropout)."""

    label: str
    variant: str
    alpha: Callable[[int], float] | None = None  # blocks -> alpha_init (skipinit variants)
    settings: tuple[tuple[str, object], ...] = ()  # other TrainConfig fields, as (name, value)
    lr_scale: float = 1.0  # every lr of the grid times this (the BN paper's BN-x5, BN-x30)

    def alpha_init(self, depth: int) -> float | None:
        return None if self.alpha is None else self.alpha(3 * ((depth - 4) // 6))


@dataclass(frozen=True)
class Preset:
    """The grid's size and the settings every run shares."""

    depths: tuple[int, ...]
    width: int
    epochs: int
    lrs: tuple[float, ...]
    seeds: int
    keep: int  # the best `keep` seeds at the best lr are averaged (the paper: 5 of 7)
    batch_size: int = 64
    batch_sizes: tuple[int, ...] = ()
    # lrs are for this batch size and scale in proportion to the batch (None: the same lrs at
    # every batch size, as the batch-size study needs to find the proportion itself)
    lr_batch: int | None = None
    shared: dict[str, object] = field(default_factory=dict)  # other TrainConfig fields
    init_scales: tuple[float, ...] = (1.0,)  # the initialization's scale (TrainConfig.init_scale)

    def lrs_for(self, batch: int) -> tuple[float, ...]:
        return (
            self.lrs
            if self.lr_batch is None
            else tuple(lr * batch / self.lr_batch for lr in self.lrs)
        )


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    arms: tuple[str, ...]
    axis: str  # "depth", "batch_size" or "init_scale": what the x axis of the report is
    presets: dict[str, Preset]


def lr_grid(largest: float, count: int) -> tuple[float, ...]:
    """`count` learning rates halving from `largest`: the paper's logarithmic grid."""
    return tuple(largest / 2**k for k in range(count))
