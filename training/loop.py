"""The step loop: one epoch of batched augmentation, forward, backward and SGD.

Randomness is derived from (seed, epoch) at the start of every epoch: the shuffle, the crops
and flips, and dropout. A resumed run therefore continues exactly where an uninterrupted one
would be, without saving RNG states. The loss, accuracy and a NaN flag accumulate on the device
and are read every `sync_every` steps only: reading a value from a GPU waits for it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from skipfold.training.augment import random_crop_flip
from skipfold.training.device_data import DeviceData
from skipfold.training.distributed import Distributed
from skipfold.training.evaluation import autocast
from skipfold.training.schedule import learning_rate


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the run stops and says where."""

    def __init__(self, epoch: int, step: int, steps_per_epoch: int, lr: float) -> None:
        super().__init__(
            f"loss became NaN or infinite at epoch {epoch}, step {step} of {steps_per_epoch} "
            f"(lr {lr:.3g})"
        )
        self.epoch, self.step, self.lr = epoch, step, lr


@dataclass(frozen=True)
class StepPlan:
    """How the epochs are cut into steps, and the learning rate at each."""

    base_lr: float
    schedule: str
    global_batch: int
    local_batch: int
    steps_per_epoch: int
    epochs: int
    warmup_steps: int

    def lr(self, epoch: int, step: int) -> float:
        global_step = (epoch - 1) * self.steps_per_epoch + step
        total = self.steps_per_epoch * self.epochs
        return learning_rate(self.base_lr, self.schedule, global_step, total, self.warmup_steps)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


@dataclass
class _Totals:
    """Running sums on the device; read back only every `sync_every` steps."""

    loss: torch.Tensor
    correct: torch.Tensor
    first_bad: torch.Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> _Totals:
        return cls(
            torch.zeros((), device=device, dtype=torch.float64),
            torch.zeros((), device=device, dtype=torch.int64),
            torch.full((), -1, device=device, dtype=torch.int64),
        )

    def add(self, step: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        bad = (self.first_bad < 0) & ~torch.isfinite(loss)
        self.first_bad = torch.where(bad, torch.tensor(step, device=loss.device), self.first_bad)


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DeviceData,
    plan: StepPlan,
    ddp: Distributed,
    epoch: int,
    seed: int,
    *,
    bf16: bool = False,
    label_smoothing: float = 0.0,
    augmentation: tuple[int, bool] = (4, True),
) -> dict[str, Any]:
    """One epoch; the row metrics.jsonl gets (without the test figures). Raises Diverged.
    `augmentation`: random_crop_flip's padding and flip."""
    device = ddp.device
    seed = epoch_seed(seed, epoch)
    torch.manual_seed(seed)  # dropout
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.randperm(len(data.train_x), generator=generator, device=device)
    mine = slice(ddp.rank * plan.local_batch, (ddp.rank + 1) * plan.local_batch)
    sync_every = 1 if device.type == "cpu" else 50
    model.train()
    totals = _Totals.zeros(device)
    ddp.synchronize()
    started = time.perf_counter()
    bar = tqdm(
        range(plan.steps_per_epoch),
        desc=f"epoch {epoch}/{plan.epochs}",
        unit="step",
        disable=not ddp.is_main or not sys.stderr.isatty(),
        leave=False,
        file=sys.stderr,
    )
    lr = plan.lr(epoch, 0)
    for step in bar:
        lr = plan.lr(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = order[step * plan.global_batch : (step + 1) * plan.global_batch]
        x = random_crop_flip(data.train_x[index], generator, *augmentation)[mine]
        x = data.standardize(x)
        y = data.train_y[index][mine]
        with autocast(device, bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals.add(step, loss.detach(), logits.detach(), y)
        if (step + 1) % sync_every == 0 or step + 1 == plan.steps_per_epoch:
            _check_and_show(totals, bar, ddp, plan, epoch, step, lr)
    ddp.synchronize()
    seconds = time.perf_counter() - started
    trained = plan.steps_per_epoch * plan.global_batch
    return {
        "epoch": epoch,
        "train_loss": float(ddp.sum(totals.loss)) / trained,
        "train_acc": int(ddp.sum(totals.correct)) / trained,
        "lr": lr,
        "images_per_s": trained / seconds,
        "seconds": seconds,
    }


def _check_and_show(
    totals: _Totals,
    bar: Any,
    ddp: Distributed,
    plan: StepPlan,
    epoch: int,
    step: int,
    lr: float,
) -> None:
    bad = int(ddp.max(totals.first_bad))
    if bad >= 0:
        bar.close()
        raise Diverged(epoch, bad + 1, plan.steps_per_epoch, lr)
    seen = (step + 1) * plan.local_batch
    bar.set_postfix(
        refresh=False,
        loss=f"{float(totals.loss) / seen:.3f}",
        acc=f"{100 * int(totals.correct) / seen:.1f}%",
        lr=f"{lr:.3g}",
    )
