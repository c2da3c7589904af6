"""`skipfold export`: fold a trained run and add it to a Triton-layout model repository."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MIN_OPSET = 18  # export.onnx_graph.MIN_OPSET; not imported so that --help stays instant
DEFAULT_MAX_BATCH_SIZE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a run folder written by skipfold train")
    parser.add_argument("--repo", type=Path, required=True, help="model repository, e.g. repo/")
    parser.add_argument(
        "--name",
        help="model name in the repository (default: the run folder's name, "
        "plus '-unfolded' with --no-fold)",
    )
    parser.add_argument(
        "--no-fold",
        dest="fold",
        action="store_false",
        help="keep every BatchNormalization (the baseline of the latency comparison)",
    )
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset, >= {MIN_OPSET}")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=DEFAULT_MAX_BATCH_SIZE,
        help="Triton's max_batch_size in config.pbtxt",
    )
    parser.add_argument(
        "--verify-images",
        type=Path,
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
    from export.exporter import export_run

    exported, version, path = export_run(
        args.run,
        args.repo,
        name=args.name,
        fold=args.fold,
        opset=args.opset,
        max_batch_size=args.max_batch_size,
        images=args.verify_images,
    )
    figures = exported.verification
    print(f"op counts ({'folded' if exported.folded else 'not folded: --no-fold'}):")
    print(_format_ops(exported.ops_before, exported.ops_after))
    print(f"parameters: {exported.parameters:,}")
    print(f"FLOPs per image: {exported.flops_per_image / 1e6:,.1f} M (2 x conv/linear MACs)")
    print(
        f"verified on {figures['images']} images against PyTorch (ONNX Runtime, no graph "
        f"optimizations): max |logit diff| {figures['max_abs_logit_diff']:.2e} "
        f"(tolerance {figures['tolerance']:g}), top-1 agreement "
        f"{100 * figures['top1_agreement']:.1f}%"
    )
    print(f"wrote {path} (version {version}, {len(exported.model_bytes) / 1e6:.2f} MB)")
    sys.stdout.flush()
    return 0
