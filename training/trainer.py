"""`train()`: a config in, a run folder out. The parts live beside it: the device and torchrun
(`distributed`), the step loop (`loop`), evaluation (`evaluation`), the run folder (`run_folder`,
`checkpoint`).
"""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import skipfold
from skipfold.common.io import first_missing
from skipfold.models.build import build_model
from skipfold.training import checkpoint
from skipfold.training.config import TrainConfig
from skipfold.training.datasets import ImageDataset, load_dataset
from skipfold.training.device_data import DeviceData
from skipfold.training.distributed import Distributed, setup_distributed, wrap_for_training
from skipfold.training.evaluation import WATCHED_PERCENTILES, evaluate_test_set, watched_unit
from skipfold.training.loop import Diverged, StepPlan, train_epoch
from skipfold.training.run_folder import STATE, DataSpec, RunConfig, RunFolder

__all__ = ["Diverged", "train"]


def software_versions() -> dict[str, str]:
    return {
        "skipfold": skipfold.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def step_plan(config: TrainConfig, train_images: int, world_size: int) -> StepPlan:
    """Checked before anything is written: the batch must fit the data and the processes."""
    if config.batch_size % world_size:
        raise ValueError(
            f"batch size {config.batch_size} is not divisible by {world_size} processes"
        )
    steps = train_images // config.batch_size
    if steps == 0:
        raise ValueError(
            f"{train_images} training images are fewer than one batch of {config.batch_size}"
        )
    return StepPlan(
        base_lr=config.lr,
        schedule=config.schedule,
        global_batch=config.batch_size,
        local_batch=config.batch_size // world_size,
        steps_per_epoch=steps,
        epochs=config.epochs,
        warmup_steps=round(config.warmup_epochs * steps),
    )


def run_config(config: TrainConfig, data: ImageDataset, model: torch.nn.Module) -> RunConfig:
    mean, std = data.channel_stats()
    return RunConfig(
        model=model.spec,
        data=DataSpec(
            dataset=data.name,
            data_dir=config.data_dir,
            classes=data.classes,
            mean=mean,
            std=std,
            standardize=config.standardize,
            input_size=(int(data.train_images.shape[1]), int(data.train_images.shape[2])),
            train_images=len(data.train_images),
            test_images=len(data.test_images),
        ),
        recipe=config,
        software=software_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


@dataclass
class _Session:
    """What the epochs need, set up once."""

    run: RunFolder
    config: TrainConfig
    ddp: Distributed
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    plan: StepPlan
    plotted_at: float = field(default_factory=time.monotonic)  # the last curves.png, or start


# curves.png is drawn after the last epoch, and after others at most this often: drawing it takes
# about a second, more than a whole epoch of the short runs that tests and grids make
PLOT_EVERY_S = 30.0


def _resume(session: _Session) -> tuple[int, list[dict[str, Any]], RunConfig]:
    """Epochs done, their metrics and the run's config; the settings must be the run's own
    (the device may change)."""
    run = session.run
    described = run.check_continues(session.config)
    done = checkpoint.load_state(run, session.model, session.optimizer)
    return done, [m for m in run.read_metrics() if m.get("epoch", 0) <= done], described


def _save_epoch(session: _Session, metrics: list[dict[str, Any]]) -> None:
    run, model, row = session.run, session.model, metrics[-1]
    checkpoint.save_model(run, model)
    run.write_metrics(metrics)
    checkpoint.save_state(run, model, session.optimizer, row["epoch"])  # last: marks it done
    last = row["epoch"] == session.config.epochs
    if last or time.monotonic() - session.plotted_at > PLOT_EVERY_S:
        run.plot_curves(metrics)
        session.plotted_at = time.monotonic()
    print(
        f"epoch {row['epoch']:>3}/{session.config.epochs}  train loss {row['train_loss']:.4f} "
        f"acc {100 * row['train_acc']:.2f}%  test loss {row['test_loss']:.4f} "
        f"acc {100 * row['test_acc']:.2f}%  lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  "
        f"{row['seconds']:.1f}s",
        flush=True,
    )


def _set_up(config: TrainConfig, run: RunFolder, ddp: Distributed, data: ImageDataset) -> _Session:
    plan = step_plan(config, len(data.train_images), ddp.world_size)
    torch.manual_seed(config.seed)
    options = config.model_options(data.train_images.shape[1:3])
    model = build_model(config.variant, config.depth, config.width, len(data.classes), **options)
    model = model.to(ddp.device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    return _Session(run, config, ddp, model, optimizer, plan)


def train(config: TrainConfig, out: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train into the run folder `out`; return the last epoch's metrics ({} for none).

    Everything that can be checked is checked before the first file is written. A new run that
    fails before its first epoch is saved (Ctrl-C included) leaves nothing behind; a diverged
    run keeps its record (metrics.jsonl says where).
    """
    run = RunFolder(out)
    ddp = setup_distributed(config.device)
    if resume:
        run.check_continues(config)
    else:
        run.check_new()
    ddp.barrier()  # every rank has checked the folder before rank 0 writes into it
    data = _load_data(config, ddp)
    session = _set_up(config, run, ddp, data)
    if resume:
        done, metrics, described = _resume(session)
        if done >= config.epochs:
            print(f"{run}: all {config.epochs} epochs are done already")
            return metrics[-1] if metrics else {}
    else:
        done, metrics, described = 0, [], run_config(config, data, session.model)
    train_model = wrap_for_training(
        session.model, ddp, sync_bn=config.sync_bn, compile=config.compile
    )
    tensors = DeviceData.load(
        data, ddp.device, described.data.mean, described.data.std, config.standardize == "per-image"
    )
    made = first_missing(run.path)  # what a new run creates, and removes if it saves nothing
    try:
        if ddp.is_main and not resume:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(described)
        return _train_epochs(session, train_model, tensors, done, metrics)
    except Diverged as exc:
        if ddp.is_main:
            row = {"epoch": exc.epoch, "step": exc.step, "diverged": True, "lr": exc.lr}
            run.write_metrics([*metrics, row | {"message": str(exc)}])
        raise
    except BaseException:
        if ddp.is_main and not resume and not (run / STATE).exists():
            _remove_new_run(run, made)
        raise


def _load_data(config: TrainConfig, ddp: Distributed) -> ImageDataset:
    """The data set, loaded (and downloaded or cached, if it must be) by rank 0 first."""
    if not ddp.is_main:
        ddp.barrier()
    data = load_dataset(config.dataset, config.data_dir, seed=config.seed)
    if ddp.is_main:
        ddp.barrier()
    return data.limit(config.train_limit, config.test_limit)


def _train_epochs(
    session: _Session,
    train_model: torch.nn.Module,
    tensors: DeviceData,
    done: int,
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    config, ddp, model = session.config, session.ddp, session.model
    bf16 = config.bf16_on(ddp.device.type)
    for epoch in range(done + 1, config.epochs + 1):
        row = train_epoch(
            train_model, session.optimizer, tensors, session.plan, ddp, epoch, config.seed,
            bf16=bf16, label_smoothing=config.label_smoothing,
            augmentation=(config.crop_padding, config.flip),
        )  # fmt: skip
        row["test_loss"], row["test_acc"] = evaluate_test_set(model, tensors, ddp, bf16=bf16)
        row |= watched_unit(model, tensors)
        metrics.append({k: row[k] for k in METRIC_KEYS if k in row})
        if ddp.is_main:
            _save_epoch(session, metrics)
    if config.epochs == 0 and ddp.is_main:
        checkpoint.save_model(session.run, model)  # the initialized network, for latency work
    ddp.barrier()
    return metrics[-1] if metrics else {}


METRIC_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "images_per_s",
    "seconds",
    *(f"watched_p{p}" for p in WATCHED_PERCENTILES),  # the mlp's (evaluation.watched_unit)
)


def _remove_new_run(run: RunFolder, made: Path | None) -> None:
    """Undo a new run that saved no epoch: the folders train made, else what it wrote into the
    (empty) folder it was given."""
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        return
    for path in run.path.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
