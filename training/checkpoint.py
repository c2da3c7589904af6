"""The tensors of a run folder, in safetensors (no pickle): weights, and the state to resume."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from skipfold.common.io import atomic_path
from skipfold.models.build import build_from_spec
from skipfold.training.run_folder import CONFIG, MODEL, STATE, RunConfig, RunFolder


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None


def save_model(run: RunFolder, model: torch.nn.Module) -> None:
    save_tensors(run / MODEL, model.state_dict(), {"format": "skipfold-model"})


def load_trained(run: RunFolder) -> tuple[torch.nn.Module, RunConfig]:
    """The run's trained network in eval mode, and its config."""
    config = run.read_config()
    path = run / MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{run}: {MODEL} is missing (the run has not finished an epoch)")
    model = build_from_spec(config.model)
    try:
        model.load_state_dict(_load(path))
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match {run / CONFIG}: {exc}") from None
    return model.eval(), config


def save_state(
    run: RunFolder, model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int
) -> None:
    """Weights and SGD momentum after `epoch` epochs, in one file written atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    names = {p: n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            buffer = optimizer.state.get(p, {}).get("momentum_buffer")
            if buffer is not None:
                tensors[f"momentum.{names[p]}"] = buffer
    save_tensors(run / STATE, tensors, {"format": "skipfold-state", "epoch": str(epoch)})


def load_state(run: RunFolder, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights and momentum; return the number of epochs already done."""
    path = run / STATE
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            epoch = int((f.metadata() or {})["epoch"])
        tensors = _load(path)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        params = dict(model.named_parameters())
        for key, value in tensors.items():
            if key.startswith("momentum."):
                p = params[key[9:]]
                optimizer.state[p]["momentum_buffer"] = value.to(p.device)
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot resume from {path}: not this run's state ({exc})") from None
    return epoch
