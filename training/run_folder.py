"""The run folder: what a training run leaves behind, with no pickle anywhere.

config.json         everything to rebuild the model and its preprocessing
model.safetensors   the trained weights (and BN running statistics)
state.safetensors   weights + optimizer momentum + the epoch reached, for --resume
metrics.jsonl       one JSON line per epoch
curves.png          loss and accuracy against epoch
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from skipfold.io import atomic_path, write_bytes_atomic, write_json_atomic

CONFIG, MODEL, STATE, METRICS, CURVES = (
    "config.json",
    "model.safetensors",
    "state.safetensors",
    "metrics.jsonl",
    "curves.png",
)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_model(run: Path, model: torch.nn.Module) -> None:
    save_tensors(run / MODEL, model.state_dict(), {"format": "skipfold-model"})


def read_config(run: Path) -> dict[str, Any]:
    path = run / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a run folder: {CONFIG} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    missing = [
        k for k in ("model", "data", "recipe") if not isinstance(config, dict) or k not in config
    ]
    if missing:
        raise ValueError(f"{path} is not a skipfold run config (missing {', '.join(missing)})")
    return config


def write_config(run: Path, config: dict[str, Any]) -> None:
    write_json_atomic(run / CONFIG, config)


def load_model_weights(run: Path) -> dict[str, torch.Tensor]:
    path = run / MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{run}: {MODEL} is missing (the run has not finished an epoch)")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None


def load_model(run: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The run's trained network in eval mode, and its config.json."""
    from models import build_model

    config = read_config(run)
    arch = dict(config["model"])
    try:
        model = build_model(
            arch.pop("variant"),
            arch.pop("depth"),
            arch.pop("width"),
            arch.pop("num_classes"),
            **{k: v for k, v in arch.items() if v is not None},
        )
    except KeyError as exc:
        raise ValueError(f"{run / CONFIG}: model.{exc.args[0]} is missing") from None
    weights = load_model_weights(run)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"{run / MODEL} does not match {run / CONFIG}: {exc}") from None
    return model.eval(), config


def save_state(
    run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int
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


def load_state(run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights and momentum; return the number of epochs already done."""
    path = run / STATE
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {path} is missing")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        epoch = int(f.metadata()["epoch"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith("momentum."):
            p = params[key[9:]]
            optimizer.state[p]["momentum_buffer"] = value.to(p.device)
    return epoch


def read_metrics(run: Path) -> list[dict[str, Any]]:
    path = run / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    write_bytes_atomic(run / METRICS, text.encode())


def plot_curves(run: Path, rows: list[dict[str, Any]]) -> None:
    """Loss and accuracy against epoch, train and test."""
    from matplotlib.figure import Figure

    rows = [r for r in rows if "train_loss" in r]
    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for split in ("train", "test"):
        loss_ax.plot(epochs, [r[f"{split}_loss"] for r in rows], marker=".", label=split)
        acc_ax.plot(epochs, [100 * r[f"{split}_acc"] for r in rows], marker=".", label=split)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(run.name)
    with atomic_path(run / CURVES) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
