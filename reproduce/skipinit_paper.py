"""The SkipInit paper's training claims (De & Smith 2020) as experiments of `skipfold
reproduce`: which networks train as they get deeper, the learning rate against the batch size,
and Regularized SkipInit at small batch sizes."""

from __future__ import annotations

import math

from skipfold.reproduce.experiment_spec import Arm, Experiment, Preset, lr_grid

SKIPINIT_ARMS: dict[str, Arm] = {
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


_PAPER = {"dataset": "cifar10", "recipe": "paper", "standardize": "per-image"}
_SHAPES = {"dataset": "shapes", "test_limit": 2000}
_SMOKE = {"dataset": "shapes", "train_limit": 128, "test_limit": 64}
_SMOKE_PRESET = {"depths": (10,), "width": 1, "epochs": 2, "lrs": (0.05,), "seeds": 1, "keep": 1}

SKIPINIT_EXPERIMENTS: dict[str, Experiment] = {
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
                lrs=lr_grid(0.05, 3),
                seeds=1,
                keep=1,
                batch_size=8,
                shared=_SHAPES | {"train_limit": 5000},
            ),
            "paper": Preset(
                depths=(16, 100, 1000),
                width=2,
                epochs=200,
                lrs=lr_grid(0.5, 8),
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
                lrs=lr_grid(0.8, 6),
                seeds=1,
                keep=1,
                batch_sizes=(8, 32, 128),
                shared=_SHAPES | {"train_limit": 6000},
            ),
            "paper": Preset(
                depths=(16,),
                width=4,
                epochs=200,
                lrs=lr_grid(8.0, 12),
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
                lrs=lr_grid(0.1, 3),
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
                lrs=lr_grid(0.2, 6),
                seeds=3,
                keep=3,
                batch_sizes=(1, 4, 16, 64),
                lr_batch=64,
                shared=_PAPER,
            ),
        },
    ),
}
