"""`skipfold train`: train a BN or SkipInit Wide-ResNet into a run folder.

Every option is a `TrainConfig` field and is checked by that field as it is parsed; the run
folder is checked next; torch is imported only after that.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from pydantic import ValidationError

from skipfold.common import arguments
from skipfold.common.arguments import one_line
from skipfold.training.config import RECIPE_DEFAULTS, TrainConfig
from skipfold.training.run_folder import STATE, RunFolder

HELP = {
    "variant": "the network",
    "depth": "6N+4",
    "width": "width factor k",
    "dropout": "inside each block",
    "alpha_init": "initial alpha of the skipinit variants (default 0)",
    "dataset": "shapes is built in; the others read --data-dir",
    "data_dir": "cifar10/cifar100 release or imagefolder root (train/<class>/*, test/<class>/*)",
    "train_limit": "use only the first N training images",
    "test_limit": "use only the first N test images",
    "standardize": "dataset: the training set's per-channel mean/std; per-image: the SkipInit "
    "paper's, each image by its own mean/std",
    "recipe": "where batch size, lr and schedule come from when not given: skipfold (cosine, "
    "batch 16: trains every variant in runs of any length) or paper (the SkipInit paper's exact "
    "CIFAR-10 recipe, for 200 epochs)",
    "epochs": "0 writes the initialized network (for latency work)",
    "batch_size": "global batch (split over torchrun processes)",
    "lr": "base learning rate, any positive value (the papers sweep a log grid)",
    "schedule": "cosine: half a cosine to 0; skipinit: the paper's, constant for half the run, "
    "then halved every 5%; wrn-step: x0.2 at 30/60/80%",
    "crop_padding": "augmentation: pad by P pixels, crop back at a random offset, flip half "
    "(4: the papers'; 2 suits runs of a few epochs; 0: flips only)",
    "warmup_epochs": "linear warm-up",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum (the WRN paper's) instead of heavy-ball (the SkipInit paper's)",
    "weight_decay": "L2 on every parameter",
    "label_smoothing": "e in the training loss's targets (1 - e) one-hot + e uniform; the test "
    "loss is always plain cross-entropy",
    "device": "auto: cuda when available",
    "precision": "bf16: the steps and the test under bfloat16 autocast (weights stay float32); "
    "auto: bf16 on CUDA, fp32 on the CPU (bf16 on a CPU with AVX512-BF16 or AMX trains about "
    "1.5x faster)",
    "seed": "weights, data order, augmentation and dropout",
}
TYPES = {"data_dir": lambda text: str(arguments.folder_to_write(text))}
GROUPS = {
    "model": ("variant", "depth", "width", "dropout", "alpha_init"),
    "data": ("dataset", "data_dir", "train_limit", "test_limit", "standardize", "crop_padding"),
    "recipe": (
        "recipe",
        "epochs",
        "batch_size",
        "lr",
        "schedule",
        "warmup_epochs",
        "momentum",
        "nesterov",
        "weight_decay",
        "label_smoothing",
    ),
    "machine": ("device", "precision", "seed"),
}


def _recipe_help(name: str) -> str | None:
    """Help for a field the recipe sets: its default under each recipe (the flag defaults to
    None, so that the config can tell a value given from one left to the recipe)."""
    if name not in RECIPE_DEFAULTS["skipfold"]:
        return HELP.get(name)
    defaults = "; ".join(f"{recipe}: {values[name]}" for recipe, values in RECIPE_DEFAULTS.items())
    return f"{HELP[name]} (default: {defaults})".replace("%", "%%")


def _add_field(group: Any, name: str) -> None:
    info = TrainConfig.model_fields[name]
    flag = "--" + name.replace("_", "-")
    default = None if name in RECIPE_DEFAULTS["skipfold"] else info.default
    if info.annotation is bool:
        group.add_argument(flag, action="store_true", help=HELP.get(name))
        return
    if typing.get_origin(info.annotation) is typing.Literal:
        choices = typing.get_args(info.annotation)
        group.add_argument(flag, default=default, choices=choices, help=_recipe_help(name))
        return
    group.add_argument(
        flag,
        type=TYPES.get(name) or arguments.field_type(TrainConfig, name),
        default=default,
        help=_recipe_help(name),
        metavar=name.upper(),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            _add_field(group, name)
        if title == "machine":
            group.add_argument("--compile", action="store_true", help="torch.compile the model")
            group.add_argument(
                "--sync-bn", action="store_true", help="SyncBatchNorm under torchrun (CUDA)"
            )
    parser.add_argument(
        "--out",
        required=True,
        type=arguments.folder_to_write,
        help="the run folder, e.g. runs/bn-16-4: new or empty, or a run to --resume",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the arguments describe; ValueError (one line) if they contradict."""
    values = {name: getattr(args, name) for name in TrainConfig.model_fields}
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise ValueError(one_line(exc)) from None


def check(args: argparse.Namespace) -> None:
    """The config as a whole, and the run folder: before torch is even imported."""
    args.config = config_from_args(args)
    folder = RunFolder(args.out)
    if args.resume:
        folder.check_continues(args.config)
    else:
        folder.check_new()


def run(args: argparse.Namespace) -> int:
    from skipfold.training.trainer import Diverged, train

    config, folder = args.config, RunFolder(args.out)
    try:
        last = train(config, args.out, resume=args.resume)
    except Diverged as exc:
        print(f"skipfold train: diverged: {exc}; metrics.jsonl in {args.out} says where")
        return 3
    except KeyboardInterrupt:
        if (folder / STATE).is_file():
            print(
                f"\nskipfold train: interrupted; the last complete epoch is safe in {args.out} "
                "(continue with --resume)"
            )
        else:
            print("\nskipfold train: interrupted before the first epoch ended; nothing was kept")
        return 130
    if not last and config.epochs == 0:
        print(f"wrote the initialized network to {args.out} (--epochs 0)")
    if last:
        print(
            f"done: {args.out}  test accuracy {100 * last['test_acc']:.2f}%  "
            f"test loss {last['test_loss']:.4f}  ({last['epoch']} epochs)"
        )
    return 0
