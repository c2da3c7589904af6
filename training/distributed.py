"""The device, and the torchrun process group when there is one.

Under torchrun every rank draws the same global batch and keeps its slice, so N processes
compute what one process computes with the same global batch (see `skipfold.training.loop`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over all ranks (in place); the tensor itself with one process."""
        if self.world_size > 1:
            dist.all_reduce(tensor)
        return tensor

    def max(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def synchronize(self) -> None:
        """Wait for the device's queued work (so that wall-clock times mean something)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


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
    if device.type == "cuda":
        # every step has the same shapes: cuDNN's autotuner picks each convolution's fastest
        # algorithm once (steps are drawn from a seeded order, not from the algorithm choice)
        torch.backends.cudnn.benchmark = True
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


def wrap_for_training(
    model: torch.nn.Module, ddp: Distributed, *, sync_bn: bool, compile: bool
) -> torch.nn.Module:
    """The module the step loop calls: SyncBatchNorm, DDP and torch.compile as asked."""
    if sync_bn and ddp.world_size > 1:
        if ddp.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if ddp.world_size > 1:
        device_ids = [ddp.device.index] if ddp.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if compile:
        model = torch.compile(model)
    return model
