"""The papers' training claims as grids of ordinary `skipfold train` runs. Torch-free.

An experiment is a set of arms (a variant with its options, one curve of the paper's plots)
crossed with a grid (depths, batch sizes or initialization scales, learning rates, seeds). A
preset says how big the grid is: `cpu` finishes each experiment on a 2-core machine in at most
half an hour; `paper` is the paper's setting, for GPUs; `smoke` runs the whole pipeline in
about a minute and shows nothing about the claims (a check of the setup). The experiments are
tables: `skipinit_paper.py` (De & Smith 2020) and `batchnorm_paper.py` (Ioffe & Szegedy 2015).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from skipfold.common.model_flags import flag_name
from skipfold.reproduce.batchnorm_paper import BATCHNORM_ARMS, BATCHNORM_EXPERIMENTS
from skipfold.reproduce.experiment_spec import Arm, Experiment, Preset
from skipfold.reproduce.skipinit_paper import SKIPINIT_ARMS, SKIPINIT_EXPERIMENTS
from skipfold.training.config import TrainConfig

__all__ = ["ARMS", "EXPERIMENTS", "EXPERIMENT_TABLE", "PRESETS", "Arm", "Preset", "grid"]

ARMS: dict[str, Arm] = SKIPINIT_ARMS | BATCHNORM_ARMS
EXPERIMENT_TABLE: dict[str, Experiment] = SKIPINIT_EXPERIMENTS | BATCHNORM_EXPERIMENTS
EXPERIMENTS = tuple(EXPERIMENT_TABLE)
PRESETS = ("smoke", "cpu", "paper")


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
        init = "" if c.init_scale == 1.0 else f"_init{c.init_scale:g}"
        network = f"{c.architecture}-{c.depth}-{c.width}{init}"
        return f"{arm}/{network}_b{c.batch_size}_lr{c.lr:g}_s{c.seed}"

    def command(self, out: Path) -> list[str]:
        """The `skipfold train` command line of this run."""
        defaults = TrainConfig(recipe=self.config.recipe, variant=self.config.variant)
        argv = ["skipfold", "train"]
        for name in TrainConfig.model_fields:
            value, flag = getattr(self.config, name), "--" + name.replace("_", "-")
            if name not in _ALWAYS_SHOWN and value == getattr(defaults, name):
                continue
            if isinstance(value, bool):  # a switch: its flag turns the default around
                argv += [flag_name(TrainConfig, name)]
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
    for depth, batch, init_scale, arm_label, lr_index, seed in itertools.product(
        chosen.depths,
        batch_sizes,
        chosen.init_scales,
        spec.arms,
        range(len(chosen.lrs)),
        range(chosen.seeds),
    ):
        arm = ARMS[arm_label]
        lr = chosen.lrs_for(batch)[lr_index] * arm.lr_scale
        values = (
            dict(chosen.shared)
            | dict(arm.settings)
            | {
                "init_scale": init_scale,
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
        )
        if values["dataset"] not in ("shapes", "mnist"):
            values["data_dir"] = data_dir
        points.append(GridPoint(arm_label, TrainConfig(**values)))
    return points
