"""`skipfold evaluate`: test accuracy and loss of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from skipfold.common import arguments
from skipfold.training.config import DATASETS, DEVICES
from skipfold.training.run_folder import RunFolder, trained_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", type=arguments.checked(trained_run), help="a run folder written by skipfold train"
    )
    parser.add_argument("--dataset", choices=DATASETS, help="default: the run's own")
    parser.add_argument("--data-dir", type=arguments.folder_to_write, help="default: the run's own")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument(
        "--test-flip",
        action="store_true",
        help="average each image's logits with its mirror image's, as an export with "
        "--test-flip does",
    )


def evaluate_run(
    run: str | Path,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    *,
    test_flip: bool = False,
) -> dict[str, Any]:
    """Rebuild the run's model from config.json + model.safetensors and test it; `test_flip`:
    with test-time flips (`FlipAveraged`)."""
    import torch

    from skipfold.models.flip_averaged import FlipAveraged
    from skipfold.training.checkpoint import load_trained
    from skipfold.training.datasets import load_dataset
    from skipfold.training.device_data import DeviceData
    from skipfold.training.distributed import resolve_device
    from skipfold.training.evaluation import evaluate_model

    folder = RunFolder(run)
    model, config = load_trained(folder)
    name = dataset or config.data.dataset
    data = load_dataset(name, data_dir or config.data.data_dir, seed=config.recipe.seed)
    if dataset is None and data_dir is None:  # the run's own test set, as training measured it
        data = data.limit(config.recipe.train_limit, config.recipe.test_limit)
    if len(data.classes) != len(config.data.classes):
        raise ValueError(
            f"{name} has {len(data.classes)} classes; the run was trained on "
            f"{len(config.data.classes)}"
        )
    target = resolve_device(device)
    model = model.to(target, memory_format=torch.channels_last)
    if test_flip:
        model = FlipAveraged(model)
    tensors = DeviceData.load(
        data,
        target,
        config.data.mean,
        config.data.std,
        config.data.standardize == "per-image",
        train=False,
    )
    bf16 = config.recipe.bf16_on(target.type)  # as training measured it
    loss, accuracy = evaluate_model(model, tensors.test_x, tensors.test_y, tensors, bf16=bf16)
    return {"dataset": name, "images": len(tensors.test_x), "test_loss": loss, "test_acc": accuracy}


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(
        args.run, args.dataset, args.data_dir, args.device, test_flip=args.test_flip
    )
    flip = ", with test-time flips" if args.test_flip else ""
    print(
        f"{args.run}: {result['dataset']} test accuracy {100 * result['test_acc']:.2f}% "
        f"loss {result['test_loss']:.4f} ({result['images']} images{flip})"
    )
    return 0
