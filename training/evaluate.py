"""`skipfold evaluate`: test accuracy and loss of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.datasets import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run folder written by skipfold train")
    parser.add_argument("--dataset", choices=DATASETS, help="default: the run's own")
    parser.add_argument("--data-dir", help="default: the run's own")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def evaluate_run(
    run: str | Path, dataset: str | None = None, data_dir: str | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Rebuild the run's model from config.json + model.safetensors and test it."""
    import torch

    from training import run_folder
    from training.config import TrainConfig
    from training.datasets import load_dataset
    from training.trainer import evaluate_model, limit_dataset, resolve_device

    run = Path(run)
    model, config = run_folder.load_model(run)
    recipe = TrainConfig.from_dict(config["recipe"])
    name = dataset or config["data"]["dataset"]
    data = load_dataset(name, data_dir or config["data"]["data_dir"], seed=recipe.seed)
    if dataset is None and data_dir is None:
        data = limit_dataset(data, recipe)  # the run's own test set, as training measured it
    if len(data.classes) != len(config["data"]["classes"]):
        raise ValueError(
            f"{name} has {len(data.classes)} classes; the run was trained on "
            f"{len(config['data']['classes'])}"
        )
    target = resolve_device(device)
    model = model.to(target, memory_format=torch.channels_last)
    images = torch.from_numpy(data.test_images).permute(0, 3, 1, 2).contiguous().to(target)
    labels = torch.from_numpy(data.test_labels).to(target)
    mean = torch.tensor(config["data"]["mean"], device=target)
    std = torch.tensor(config["data"]["std"], device=target)
    per_image = config["data"].get("standardize", "dataset") == "per-image"
    loss, accuracy = evaluate_model(model, images, labels, mean, std, per_image=per_image)
    return {"dataset": name, "images": len(images), "test_loss": loss, "test_acc": accuracy}


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, args.dataset, args.data_dir, args.device)
    print(
        f"{args.run}: {result['dataset']} test accuracy {100 * result['test_acc']:.2f}% "
        f"loss {result['test_loss']:.4f} ({result['images']} images)"
    )
    return 0
