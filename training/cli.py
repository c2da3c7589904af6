"""`skipfold train`: train a BN or SkipInit Wide-ResNet into a run folder."""

from __future__ import annotations

import argparse

from models.wide_resnet import VARIANTS
from training.config import STANDARDIZATIONS, TrainConfig
from training.datasets import DATASETS
from training.schedule import SCHEDULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    model = parser.add_argument_group("model")
    model.add_argument("--variant", default=d.variant, choices=list(VARIANTS))
    model.add_argument("--depth", type=int, default=d.depth, help=f"6N+4 (default {d.depth})")
    model.add_argument("--width", type=int, default=d.width, help=f"default {d.width}")
    model.add_argument("--dropout", type=float, default=d.dropout, help="inside each block")
    model.add_argument("--alpha-init", type=float, default=None, help="skipinit variants: 0")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default=d.dataset, choices=DATASETS)
    data.add_argument("--data-dir", help="cifar10/cifar100 release or imagefolder root")
    data.add_argument("--train-limit", type=int, help="use only the first N training images")
    data.add_argument("--test-limit", type=int, help="use only the first N test images")
    data.add_argument(
        "--standardize",
        default=d.standardize,
        choices=STANDARDIZATIONS,
        help="dataset: the training set's per-channel mean/std (default); per-image: the "
        "SkipInit paper's, each image by its own mean/std",
    )
    recipe = parser.add_argument_group("recipe (default: the SkipInit paper's)")
    recipe.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help=f"default {d.epochs}; 0 writes the initialized network (for latency work)",
    )
    recipe.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch")
    recipe.add_argument("--lr", type=float, default=d.lr, help=f"default {d.lr}")
    recipe.add_argument("--schedule", default=d.schedule, choices=SCHEDULES)
    recipe.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    recipe.add_argument("--momentum", type=float, default=d.momentum)
    recipe.add_argument("--weight-decay", type=float, default=d.weight_decay)
    machine = parser.add_argument_group("machine")
    machine.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    machine.add_argument("--compile", action="store_true", help="torch.compile the model")
    machine.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under torchrun")
    machine.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--out", required=True, help="the run folder, e.g. runs/bn-16-4")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = vars(args)
    return TrainConfig.from_dict(
        {k: v for k, v in values.items() if v is not None or k == "alpha_init"}
    )


def run(args: argparse.Namespace) -> int:
    from training.trainer import Diverged, train

    config = config_from_args(args)
    try:
        last = train(config, args.out, resume=args.resume)
    except Diverged as exc:
        print(f"skipfold train: diverged: {exc}")
        return 3
    except KeyboardInterrupt:
        print(
            f"\nskipfold train: interrupted; the last complete epoch is safe in {args.out} "
            "(continue with --resume)"
        )
        return 130
    if not last and config.epochs == 0:
        print(f"wrote the initialized network to {args.out} (--epochs 0)")
    if last:
        print(
            f"done: {args.out}  test accuracy {100 * last['test_acc']:.2f}%  "
            f"test loss {last['test_loss']:.4f}  ({last['epoch']} epochs)"
        )
    return 0
