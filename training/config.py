"""Every training knob in one typed place, with why each default is what it is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

STANDARDIZATIONS = ("dataset", "per-image")


@dataclass
class TrainConfig:
    # model: a pre-activation WRN (see models.build_model)
    variant: str = "bn"
    depth: int = 16
    width: int = 4
    dropout: float = 0.0  # inside every block; the WRN paper's 0.3 is for its 200-epoch runs
    alpha_init: float | None = None  # skipinit variants: None means the model's default, 0
    # data
    dataset: str = "shapes"
    data_dir: str | None = None
    train_limit: int | None = None  # use only the first N training images (quick checks)
    test_limit: int | None = None
    # "dataset": the training set's per-channel mean and std; "per-image": the SkipInit paper's
    standardize: str = "dataset"
    # recipe: the SkipInit paper's CIFAR-10 setup (batch 64, SGD with heavy-ball momentum 0.9,
    # L2 5e-4, lr constant for half the run, then halved every 5% of it)
    epochs: int = 200
    batch_size: int = 64  # global batch: under torchrun each rank takes batch_size / world_size
    lr: float = 0.05  # the paper sweeps a log grid; 0.05 at batch 64 is the WRN 0.1 at 128
    schedule: str = "skipinit"
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4  # L2 on every parameter, as in the WRN reference
    # machine
    device: str = "auto"  # auto: cuda when available, else cpu
    compile: bool = False  # torch.compile the training step's model (GPU: worth it on long runs)
    sync_bn: bool = False  # under torchrun on CUDA: SyncBatchNorm over all ranks' batches
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
