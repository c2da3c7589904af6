"""The SkipInit paper's training claims as grids of ordinary `skipfold train` runs. Torch-free.

An experiment is a set of arms (a variant with its options, one curve of the paper's plots)
crossed with a grid (depths or batch sizes, learning rates, seeds). A preset says how big the
grid is: `cpu` finishes each experiment on a 2-core machine in about half an hour on the
built-in data; `paper` is the paper's CIFAR-10 setting, for GPUs; `smoke` runs the whole
pipeline in about a minute and shows nothing about the claims (a check of the setup).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from skipfold.training.config import TrainConfig

EXPERIMENTS = ("depth", "batch-size", "regularization")
PRESETS = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Arm:
    """One curve: a variant, and its alpha at initialization as a function of the depth."""

    label: str
    variant: str
    alpha: Callable[[int], float] | None = None  # blocks -> alpha_init (skipinit variants)

    def alpha_init(self, depth: int) -> float | None:
        return None if self.alpha is None else self.alpha(3 * ((depth - 4) // 6))


ARMS: dict[str, Arm] = {
    arm.label: arm
    for arm in (
        Arm("bn", "bn"),
        Arm("skipinit", "skipinit", lambda blocks: 0.0),
        Arm("skipinit alpha=1", "skipinit", lambda blocks: 1.0),
        Arm("skipinit alpha=1/sqrt(d)", "skipinit", lambda blocks: 1 / math.sqrt(blocks)),
        Arm("none", "none"),
        Arm("none /sqrt(2)", "none-scaled"),
        Arm("skipinit-reg", "skipinit-reg", lambda blocks: 0.0),
    )
}


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
    axis: str  # "depth" or "batch_size": what the x axis of the report is
    presets: dict[str, Preset]


def _lr_grid(largest: float, count: int) -> tuple[float, ...]:
    """`count` learning rates halving from `largest`: the paper's logarithmic grid."""
    return tuple(largest / 2**k for k in range(count))


_PAPER = {"dataset": "cifar10", "recipe": "paper", "standardize": "per-image"}
_SHAPES = {"dataset": "shapes", "test_limit": 2000}
_SMOKE = {"dataset": "shapes", "train_limit": 128, "test_limit": 64}
_SMOKE_PRESET = {"depths": (10,), "width": 1, "epochs": 2, "lrs": (0.05,), "seeds": 1, "keep": 1}

EXPERIMENT_TABLE: dict[str, Experiment] = {
    "depth": Experiment(
        name="depth",
        title="Table 1: which networks train as they get deeper",
        arms=(
            "bn",
            "skipinit",
            "skipinit alpha=1",
            "skipinit alpha=1/sqrt(d)",
            "none",
            "none /sqrt(2)",
        ),
        axis="depth",
        presets={
            "smoke": Preset(**_SMOKE_PRESET, batch_size=16, shared=_SMOKE),
            # 5,000 images x 2 epochs at batch 8 (1,250 steps) and one seed: what fits depth 100
            # into half an hour on 2 cores. At batch 16 (625 steps, the same lrs x 2) SkipInit
            # at depth 100 spent a seed-dependent part of the run at chance before it learned,
            # and ended anywhere from 12% to 93% (docs/results.md)
            "cpu": Preset(
                depths=(10, 28, 100),
                width=1,
                epochs=2,
                lrs=_lr_grid(0.05, 3),
                seeds=1,
                keep=1,
                batch_size=8,
                shared=_SHAPES | {"train_limit": 5000},
            ),
            "paper": Preset(
                depths=(16, 100, 1000),
                width=2,
                epochs=200,
                lrs=_lr_grid(0.5, 8),
                seeds=7,
                keep=5,
                batch_size=64,
                shared=_PAPER,
            ),
        },
    ),
    "batch-size": Experiment(
        name="batch-size",
        title="Optimal and largest stable learning rate against batch size (the paper: WRN-16-4)",
        arms=("bn", "skipinit", "none"),
        axis="batch_size",
        presets={
            "smoke": Preset(**_SMOKE_PRESET, batch_sizes=(16, 32), shared=_SMOKE),
            "cpu": Preset(
                depths=(16,),
                width=1,
                epochs=2,
                lrs=_lr_grid(0.8, 6),
                seeds=1,
                keep=1,
                batch_sizes=(8, 32, 128),
                shared=_SHAPES | {"train_limit": 6000},
            ),
            "paper": Preset(
                depths=(16,),
                width=4,
                epochs=200,
                lrs=_lr_grid(8.0, 12),
                seeds=3,
                keep=3,
                batch_sizes=(16, 64, 256, 1024, 4096),
                shared=_PAPER,
            ),
        },
    ),
    "regularization": Experiment(
        name="regularization",
        title="Regularized SkipInit against BN at small batch sizes (down to 1: instance norm)",
        arms=("bn", "skipinit", "skipinit-reg"),
        axis="batch_size",
        presets={
            "smoke": Preset(**_SMOKE_PRESET, batch_sizes=(16,), shared=_SMOKE),
            # 4 epochs of 4,000 images: 16,000 steps at batch 1, about 70 s a run
            "cpu": Preset(
                depths=(10,),
                width=1,
                epochs=4,
                lrs=_lr_grid(0.1, 3),
                seeds=1,
                keep=1,
                batch_sizes=(1, 4, 16),
                lr_batch=16,
                shared=_SHAPES | {"train_limit": 4000},
            ),
            "paper": Preset(
                depths=(16,),
                width=2,
                epochs=200,
                lrs=_lr_grid(0.2, 6),
                seeds=3,
                keep=3,
                batch_sizes=(1, 4, 16, 64),
                lr_batch=64,
                shared=_PAPER,
            ),
        },
    ),
}


_ALWAYS_SHOWN = ("variant", "depth", "width", "recipe", "epochs", "batch_size", "lr", "seed")


@dataclass(frozen=True)
class GridPoint:
    """One training run of the grid."""

    arm: str
    config: TrainConfig

    @property
    def name(self) -> str:
        """Its run folder, relative to --out: readable and unique within the experiment."""
        c = self.config
        arm = "-".join(re.findall(r"[a-z0-9]+", self.arm.lower()))
        return f"{arm}/wrn-{c.depth}-{c.width}_b{c.batch_size}_lr{c.lr:g}_s{c.seed}"

    def command(self, out: Path) -> list[str]:
        """The `skipfold train` command line of this run."""
        defaults = TrainConfig(recipe=self.config.recipe, variant=self.config.variant)
        argv = ["skipfold", "train"]
        for name in TrainConfig.model_fields:
            value, flag = getattr(self.config, name), "--" + name.replace("_", "-")
            if name not in _ALWAYS_SHOWN and value == getattr(defaults, name):
                continue
            if isinstance(value, bool):
                argv += [flag] if value else []
            else:
                argv += [flag, str(value)]  # a float's shortest exact form: the same run
        return [*argv, "--out", str(out / self.name)]


def grid(
    experiment: str, preset: str, data_dir: str | None = None, device: str = "auto"
) -> list[GridPoint]:
    """Every run of `experiment` at `preset`, in the order they are best run: cheap first."""
    spec = EXPERIMENT_TABLE[experiment]
    chosen = spec.presets[preset]
    batch_sizes = chosen.batch_sizes or (chosen.batch_size,)
    points = []
    for depth, batch, arm_label, lr_index, seed in itertools.product(
        chosen.depths, batch_sizes, spec.arms, range(len(chosen.lrs)), range(chosen.seeds)
    ):
        arm, lr = ARMS[arm_label], chosen.lrs_for(batch)[lr_index]
        values = dict(chosen.shared) | {
            "variant": arm.variant,
            "alpha_init": arm.alpha_init(depth),
            "depth": depth,
            "width": chosen.width,
            "epochs": chosen.epochs,
            "batch_size": batch,
            "lr": lr,
            "seed": seed,
            "device": device,
        }
        if values["dataset"] != "shapes":
            values["data_dir"] = data_dir
        points.append(GridPoint(arm_label, TrainConfig(**values)))
    return points
