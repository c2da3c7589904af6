"""`skipfold reproduce EXPERIMENT`: one of the SkipInit or Batch Normalization paper's training
claims, as a grid of `skipfold train` runs, then a report that puts each reading beside the
claim."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from skipfold.common import arguments
from skipfold.reproduce.experiments import EXPERIMENT_TABLE, EXPERIMENTS, PRESETS, grid
from skipfold.training.config import DEVICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment",
        choices=EXPERIMENTS,
        help="SkipInit paper: depth: Table 1 (which networks train deep); batch-size: optimal "
        "and largest stable lr against batch size; regularization: Regularized SkipInit vs BN at "
        "small batch. BN paper: covariate-shift: Figure 1 (the MNIST network with and without "
        "BN, a sigmoid's input over training); initialization: final accuracy against the "
        "initialization's scale, with and without BN; learning-rate: BN at 1, 5 and 30 times "
        "the baseline's lr, and sigmoids; dropout: BN with and without dropout (CIFAR-10)",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="cpu",
        help="cpu: built-in data, narrow networks, at most 30 minutes on 2 cores; paper: the "
        "paper's setting (CIFAR-10, WRN-n-2, 200 epochs; covariate-shift: more seeds and lrs), "
        "for GPUs; smoke: the whole pipeline in about a minute, a check of the setup that shows "
        "nothing about the claims",
    )
    parser.add_argument(
        "--out",
        type=arguments.folder_to_write,
        help="folder of the grid's run folders and the report (default: "
        "results/reproduce/EXPERIMENT-PRESET)",
    )
    parser.add_argument(
        "--data-dir",
        type=arguments.folder_to_write,
        help="paper presets: the CIFAR-10 release (downloaded into it when absent); dropout's "
        "cpu preset: CIFAR-10 as image folders (../shared/datasets/cifar10-jpeg.tar.gz unpacked)",
    )
    parser.add_argument(
        "--jobs",
        type=arguments.at_least(1),
        help="runs side by side (default: one per GPU where there are GPUs, else one per core, "
        "each on one thread: narrow networks train a quarter faster that way than two runs "
        "sharing two threads one after the other)",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument(
        "--print-commands",
        action="store_true",
        help="print the grid's `skipfold train` commands, one a line (for a Slurm array or a "
        "Kubernetes Job), and run nothing; then `--report-only` reads the folders they made",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the report from the run folders as they are",
    )


def check(args: argparse.Namespace) -> None:
    shared = EXPERIMENT_TABLE[args.experiment].presets[args.preset].shared
    if shared.get("dataset") == "cifar10" and args.data_dir is None:
        raise ValueError(
            f"--preset {args.preset} trains on CIFAR-10: give --data-dir (the release, or a "
            "folder to download it into)"
        )
    if shared.get("dataset") == "imagefolder" and args.data_dir is None:
        raise ValueError(
            f"{args.experiment} --preset {args.preset} trains on CIFAR-10 as image folders: give "
            "--data-dir (../shared/datasets/cifar10-jpeg.tar.gz unpacked: train/<class>/*, "
            "test/<class>/*)"
        )
    if args.out is None:
        args.out = Path("results", "reproduce", f"{args.experiment}-{args.preset}")
    if args.report_only and not args.out.is_dir():
        raise ValueError(f"--report-only: {args.out} holds no grid (no such folder)")
    args.points = grid(
        args.experiment, args.preset, args.data_dir and str(args.data_dir), args.device
    )


def _command(args: argparse.Namespace) -> str:
    argv = [
        "skipfold",
        "reproduce",
        args.experiment,
        "--preset",
        args.preset,
        "--out",
        str(args.out),
    ]
    if args.data_dir:
        argv += ["--data-dir", str(args.data_dir)]
    return shlex.join(argv)


def _gpus(device: str) -> int:
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count()


def run(args: argparse.Namespace) -> int:
    from skipfold.reproduce.grid import default_jobs, run_grid
    from skipfold.reproduce.report import build_report, to_markdown, write_report

    out: Path = args.out
    if args.print_commands:
        try:
            for point in args.points:
                print(shlex.join(point.command(out)))
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    failed = []
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        spec = EXPERIMENT_TABLE[args.experiment]
        gpus = _gpus(args.device)
        jobs = args.jobs or default_jobs(gpus)
        print(f"{len(args.points)} runs of '{spec.title}' into {out} ({jobs} at a time)")
        outcomes = run_grid(args.points, out, jobs, gpus)
        failed = [o for o in outcomes if o.status == "failed"]
    report = build_report(args.experiment, args.preset, args.points, out, _command(args))
    written = write_report(report, out)
    print(to_markdown(report))
    print("wrote " + ", ".join(str(p) for p in written))
    for outcome in failed:
        print(f"failed: {outcome.point.name} (see {outcome.log})", file=sys.stderr)
    return 1 if failed else 0
