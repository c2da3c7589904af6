"""The training loop: data set on the device, batched augmentation, SGD, a state every epoch.

Randomness is derived from (seed, epoch) at the start of every epoch: the shuffle, the crops and
flips, and dropout. A resumed run therefore continues exactly where an uninterrupted one would be,
without saving RNG states. Under torchrun every rank draws the same global batch and keeps its
slice, so N processes compute what one process computes with the same global batch.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

import skipfold
from models import build_model
from training import run_folder
from training.augment import random_crop_flip, standardize
from training.config import STANDARDIZATIONS, TrainConfig
from training.datasets import ImageDataset, load_dataset
from training.schedule import learning_rate


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the run stops and says where."""


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def setup_distributed(device_name: str) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPUs)."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(0, 1, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world_size, device)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


def software_versions() -> dict[str, str]:
    return {
        "skipfold": skipfold.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def limit_dataset(data: ImageDataset, config: TrainConfig) -> ImageDataset:
    if config.train_limit is None and config.test_limit is None:
        return data
    return ImageDataset(
        data.name,
        data.classes,
        data.train_images[: config.train_limit],
        data.train_labels[: config.train_limit],
        data.test_images[: config.test_limit],
        data.test_labels[: config.test_limit],
    )


def _model_for(config: TrainConfig, num_classes: int) -> torch.nn.Module:
    options: dict[str, float] = {"dropout": config.dropout}
    if config.alpha_init is not None:
        options["alpha_init"] = config.alpha_init
    return build_model(config.variant, config.depth, config.width, num_classes, **options)


def evaluate_model(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 500,
    per_image: bool = False,
) -> tuple[float, float]:
    """(mean loss, accuracy) of an eval-mode model on uint8 [N, 3, H, W] images."""
    model.eval()
    device = images.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    with torch.no_grad(), _autocast(device):
        for start in range(0, len(images), batch_size):
            x = standardize(images[start : start + batch_size], mean, std, per_image)
            y = labels[start : start + batch_size]
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    return float(loss_sum) / len(images), int(correct) / len(images)


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(config: TrainConfig, out: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train into the run folder `out`; return the last epoch's metrics."""
    run = Path(out)
    ddp = setup_distributed(config.device)
    device = ddp.device
    if config.batch_size % ddp.world_size:
        raise ValueError(
            f"batch size {config.batch_size} is not divisible by {ddp.world_size} processes"
        )
    if config.epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {config.epochs}")
    if config.standardize not in STANDARDIZATIONS:
        raise ValueError(
            f"unknown standardization {config.standardize!r}; choose {', '.join(STANDARDIZATIONS)}"
        )
    if run.exists() and any(run.iterdir()) and not resume:
        raise FileExistsError(f"{run} already holds a run; pass --resume or choose another --out")
    if ddp.world_size > 1:
        dist.barrier()  # every rank has checked the folder before rank 0 writes into it

    data = limit_dataset(load_dataset(config.dataset, config.data_dir, seed=config.seed), config)
    mean_list, std_list = data.channel_stats()
    torch.manual_seed(config.seed)
    model = _model_for(config, len(data.classes)).to(device, memory_format=torch.channels_last)
    arch = model.arch
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )

    done_epochs = 0
    metrics: list[dict[str, Any]] = []
    if resume:
        saved = run_folder.read_config(run)
        if saved["recipe"] != config.to_dict() | {"device": saved["recipe"]["device"]}:
            raise ValueError(f"{run}: --resume needs the same settings as the run it continues")
        done_epochs = run_folder.load_state(run, model, optimizer)
        metrics = [m for m in run_folder.read_metrics(run) if m.get("epoch", 0) <= done_epochs]
        if done_epochs >= config.epochs:
            print(f"{run}: all {config.epochs} epochs are done already")
            return metrics[-1] if metrics else {}
    elif ddp.is_main:
        run.mkdir(parents=True, exist_ok=True)
        run_folder.write_config(
            run,
            {
                "model": arch,
                "data": {
                    "dataset": data.name,
                    "data_dir": config.data_dir,
                    "classes": data.classes,
                    "mean": mean_list,
                    "std": std_list,
                    "standardize": config.standardize,
                    "input_size": [
                        int(data.train_images.shape[1]),
                        int(data.train_images.shape[2]),
                    ],
                    "train_images": len(data.train_images),
                    "test_images": len(data.test_images),
                },
                "recipe": config.to_dict(),
                "seed": config.seed,
                "software": software_versions(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    if config.sync_bn and ddp.world_size > 1:
        if device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_model: torch.nn.Module = model
    if ddp.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        train_model = torch.compile(train_model)

    # the whole data set as uint8 tensors on the device, NCHW
    train_x = torch.from_numpy(data.train_images).permute(0, 3, 1, 2).contiguous().to(device)
    train_y = torch.from_numpy(data.train_labels).to(device)
    test_x = torch.from_numpy(data.test_images).permute(0, 3, 1, 2).contiguous().to(device)
    test_y = torch.from_numpy(data.test_labels).to(device)
    mean = torch.tensor(mean_list, device=device)
    std = torch.tensor(std_list, device=device)
    per_image = config.standardize == "per-image"

    global_batch = config.batch_size
    local_batch = global_batch // ddp.world_size
    steps_per_epoch = len(train_x) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(train_x)} training images are fewer than one batch of {global_batch}"
        )
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    # reading a value from the GPU waits for it: do it every `sync_every` steps only
    sync_every = 1 if device.type == "cpu" else 50
    last: dict[str, Any] = metrics[-1] if metrics else {}

    for epoch in range(done_epochs + 1, config.epochs + 1):
        seed = _epoch_seed(config.seed, epoch)
        torch.manual_seed(seed)  # dropout
        generator = torch.Generator(device=device).manual_seed(seed)
        order = torch.randperm(len(train_x), generator=generator, device=device)
        train_model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        first_bad = torch.full((), -1, device=device, dtype=torch.int64)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="step",
            disable=not ddp.is_main or not sys.stderr.isatty(),
            leave=False,
            file=sys.stderr,
        )
        for step in bar:
            global_step = (epoch - 1) * steps_per_epoch + step
            lr = learning_rate(config.lr, config.schedule, global_step, total_steps, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = order[step * global_batch : (step + 1) * global_batch]
            images = random_crop_flip(train_x[index], generator)
            mine = slice(ddp.rank * local_batch, (ddp.rank + 1) * local_batch)
            x = standardize(images[mine], mean, std, per_image)
            y = train_y[index][mine]
            with _autocast(device):
                logits = train_model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            detached = loss.detach()
            loss_sum += detached * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            first_bad = torch.where(
                (first_bad < 0) & ~torch.isfinite(detached),
                torch.tensor(step, device=device),
                first_bad,
            )
            if (step + 1) % sync_every == 0 or step + 1 == steps_per_epoch:
                if ddp.world_size > 1:
                    dist.all_reduce(first_bad, op=dist.ReduceOp.MAX)
                bad = int(first_bad)
                if bad >= 0:
                    bar.close()
                    _record_divergence(run, ddp, metrics, epoch, bad, steps_per_epoch, lr)
                seen = (step + 1) * local_batch
                bar.set_postfix(
                    refresh=False,
                    loss=f"{float(loss_sum) / seen:.3f}",
                    acc=f"{100 * int(correct) / seen:.1f}%",
                    lr=f"{lr:.3g}",
                )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        if ddp.world_size > 1:
            dist.all_reduce(loss_sum)
            dist.all_reduce(correct)
        trained = steps_per_epoch * global_batch
        mine_x, mine_y = test_x[ddp.rank :: ddp.world_size], test_y[ddp.rank :: ddp.world_size]
        test_loss, test_acc = evaluate_model(model, mine_x, mine_y, mean, std, per_image=per_image)
        if ddp.world_size > 1:
            sums = torch.tensor([test_loss * len(mine_x), test_acc * len(mine_x)], device=device)
            dist.all_reduce(sums)
            test_loss, test_acc = (float(v) / len(test_x) for v in sums)
        last = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / trained,
            "train_acc": int(correct) / trained,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
            "images_per_s": trained / seconds,
            "seconds": seconds,
        }
        metrics.append(last)
        if ddp.is_main:
            run_folder.save_model(run, model)
            run_folder.write_metrics(run, metrics)
            run_folder.save_state(run, model, optimizer, epoch)  # last: it marks the epoch done
            run_folder.plot_curves(run, metrics)
            print(
                f"epoch {epoch:>3}/{config.epochs}  train loss {last['train_loss']:.4f} "
                f"acc {100 * last['train_acc']:.2f}%  test loss {test_loss:.4f} "
                f"acc {100 * test_acc:.2f}%  lr {lr:.3g}  {last['images_per_s']:.0f} img/s  "
                f"{seconds:.1f}s",
                flush=True,
            )
    if config.epochs == 0 and ddp.is_main:
        # The initialized network as a run: what latency work and export tests need.
        run_folder.save_model(run, model)
    if ddp.world_size > 1:
        dist.barrier()
    return last


def _record_divergence(
    run: Path,
    ddp: Distributed,
    metrics: list[dict[str, Any]],
    epoch: int,
    step: int,
    steps_per_epoch: int,
    lr: float,
) -> None:
    message = (
        f"loss became NaN or infinite at epoch {epoch}, step {step + 1} of {steps_per_epoch} "
        f"(lr {lr:.3g}); the last complete epoch ({epoch - 1}) is kept in {run}"
    )
    if ddp.is_main:
        row = {"epoch": epoch, "step": step + 1, "diverged": True, "lr": lr, "message": message}
        run_folder.write_metrics(run, [*metrics, row])
    raise Diverged(message)
