"""`skipfold export`: fold a trained run and add it to a Triton-layout model repository."""

from __future__ import annotations

import argparse
import sys

from skipfold.common import arguments
from skipfold.formats.model_repository import check_name, writable_repository
from skipfold.training.run_folder import trained_run

MIN_OPSET = 18  # skipfold.export.onnx_graph.MIN_OPSET; not imported so that --help stays instant
DEFAULT_MAX_BATCH_SIZE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", type=arguments.checked(trained_run), help="a run folder written by skipfold train"
    )
    parser.add_argument(
        "--repo",
        type=arguments.checked(writable_repository),
        required=True,
        help="model repository, e.g. repo/",
    )
    parser.add_argument(
        "--name",
        type=arguments.checked(check_name),
        help="model name in the repository (default: the run folder's name, "
        "plus '-unfolded' with --no-fold)",
    )
    parser.add_argument(
        "--no-fold",
        dest="fold",
        action="store_false",
        help="keep every BatchNormalization (the baseline of the latency comparison)",
    )
    parser.add_argument(
        "--opset", type=arguments.at_least(MIN_OPSET), default=MIN_OPSET, help="ONNX opset"
    )
    parser.add_argument(
        "--max-batch-size",
        type=arguments.at_least(1),
        default=DEFAULT_MAX_BATCH_SIZE,
        help="Triton's max_batch_size in config.pbtxt",
    )
    parser.add_argument(
        "--verify-images",
        type=arguments.existing_file,
        nargs="+",
        default=[],
        metavar="IMAGE",
        help="real image files to verify on, beside the 64 random ones",
    )


def _format_ops(before: dict[str, int], after: dict[str, int]) -> str:
    names = list(dict.fromkeys([*before, *after]))
    width = max(len(n) for n in names)
    lines = [f"  {'op':<{width}}  unfolded  exported"]
    lines += [f"  {n:<{width}}  {before.get(n, 0):>8}  {after.get(n, 0):>8}" for n in names]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from skipfold.export.exporter import export_run

    exported, version, path = export_run(
        args.run,
        args.repo,
        name=args.name,
        fold=args.fold,
        opset=args.opset,
        max_batch_size=args.max_batch_size,
        images=args.verify_images,
    )
    card = exported.card
    check = card.verification
    print(f"op counts ({'folded' if card.folded else 'not folded: --no-fold'}):")
    print(_format_ops(card.op_counts_unfolded, card.op_counts))
    print(f"parameters: {card.parameters:,}")
    print(f"FLOPs per image: {card.flops_per_image / 1e6:,.1f} M (2 x conv/linear MACs)")
    print(
        f"verified on {check.images} images against PyTorch (ONNX Runtime, no graph "
        f"optimizations): max |logit diff| {check.max_abs_logit_diff:.2e} "
        f"(tolerance {check.tolerance:g}), top-1 agreement {100 * check.top1_agreement:.1f}%"
    )
    print(f"wrote {path} (version {version}, {len(exported.model_bytes) / 1e6:.2f} MB)")
    sys.stdout.flush()
    return 0
