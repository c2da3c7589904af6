"""`skipfold train`: train a BN or SkipInit Wide-ResNet (or the BN paper's MLP) into a run folder.

Every option is a `TrainConfig` field and is checked by that field as it is parsed; the run
folder is checked next; torch is imported only after that.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from skipfold.common import arguments
from skipfold.common.messages import one_line
from skipfold.common.model_flags import add_field_flags
from skipfold.training.config import RECIPE_DEFAULTS, TrainConfig
from skipfold.training.run_folder import STATE, RunFolder

TYPES = {"data_dir": lambda text: str(arguments.folder_to_write(text))}
GROUPS = {
    "model": (
        "architecture",
        "variant",
        "depth",
        "width",
        "activation",
        "init_scale",
        "dropout",
        "alpha_init",
    ),
    "data": (
        "dataset",
        "data_dir",
        "train_limit",
        "test_limit",
        "standardize",
        "crop_padding",
        "flip",
    ),
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
    "machine": ("device", "precision", "seed", "compile", "sync_bn"),
}
# Fields the recipe sets: their flags default to None, so that the config can tell a value given
# from one left to the recipe, and --help gives the default under each recipe.
FROM_RECIPE = tuple(RECIPE_DEFAULTS["skipfold"])
RECIPE_SHOWN = {
    name: "; ".join(f"{recipe}: {values[name]}" for recipe, values in RECIPE_DEFAULTS.items())
    for name in FROM_RECIPE
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            add_field_flags(
                group,
                TrainConfig,
                [name],
                unset=name in FROM_RECIPE,
                types=TYPES,
                shown=RECIPE_SHOWN,
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
