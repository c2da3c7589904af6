"""`skipfold export`: fold a trained run and add it to a Triton-layout model repository."""

from __future__ import annotations

import argparse
import sys

from skipfold.common import arguments
from skipfold.common.model_flags import add_field_flags, given
from skipfold.export.options import ExportOptions, PrecisionOptions
from skipfold.formats.model_repository import check_name, writable_repository
from skipfold.training.run_folder import trained_run

# the name's rule is a validator, which a field's type check does not run
NAME_CHECK = {"name": arguments.checked(check_name)}


def add_repository_arguments(parser: argparse.ArgumentParser) -> None:
    """--repo and --verify-images, as `skipfold export` and `skipfold import` take them."""
    parser.add_argument(
        "--repo",
        type=arguments.checked(writable_repository),
        required=True,
        help="model repository, e.g. repo/",
    )
    parser.add_argument(
        "--verify-images",
        type=arguments.existing_file,
        nargs="+",
        metavar="IMAGE",
        help="real image files to verify on, beside the 64 random ones",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", type=arguments.checked(trained_run), help="a run folder written by skipfold train"
    )
    add_repository_arguments(parser)
    add_field_flags(parser, ExportOptions, ExportOptions.model_fields, types=NAME_CHECK)
    reduced = parser.add_argument_group(
        "precision", "int8 and fp16 exports; each precision is its own model"
    )
    add_field_flags(reduced, PrecisionOptions, PrecisionOptions.model_fields)


def _format_ops(before: dict[str, int], after: dict[str, int]) -> str:
    names = list(dict.fromkeys([*before, *after]))
    width = max(len(n) for n in names)
    lines = [f"  {'op':<{width}}  unfolded  exported"]
    lines += [f"  {n:<{width}}  {before.get(n, 0):>8}  {after.get(n, 0):>8}" for n in names]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from skipfold.export.exporter import export_run

    export = ExportOptions(**given(args, ExportOptions))
    exported, version, path = export_run(
        args.run,
        args.repo,
        **export.model_dump(),
        images=args.verify_images or (),
        options=PrecisionOptions(**given(args, PrecisionOptions)),
    )
    card = exported.card
    check = card.verification
    print(f"op counts ({'folded' if card.folded else 'not folded: --no-fold'}):")
    print(_format_ops(card.op_counts_unfolded, card.op_counts))
    print(f"parameters: {card.parameters:,}")
    flip = ", the image and its mirror" if card.test_flip else ""
    print(f"FLOPs per image: {card.flops_per_image / 1e6:,.1f} M (2 x conv/linear MACs{flip})")
    print(
        f"{'' if card.precision == 'fp32' else 'the float32 graph '}"
        f"verified on {check.images} images against PyTorch (ONNX Runtime, no graph "
        f"optimizations): max |logit diff| {check.max_abs_logit_diff:.2e} "
        f"(tolerance {check.tolerance:g}), top-1 agreement {100 * check.top1_agreement:.1f}%"
    )
    if card.test_flip:
        graph = "" if card.precision == "fp32" else " (the float32 graph)"
        print(
            f"with test-time flips: test accuracy{graph} {100 * card.test_accuracy:.2f}% on the "
            "run's test images (ONNX Runtime)"
        )
    if card.accuracy_check:
        accuracy = card.accuracy_check
        if card.quantization:
            print(
                f"int8: calibrated on {card.quantization.calibration_images} training images "
                f"({card.quantization.calibration_method})"
            )
        print(
            f"{card.precision}: on {accuracy.images:,} test images "
            f"{100 * accuracy.reference_accuracy:.2f}% (fp32) -> {100 * accuracy.accuracy:.2f}% "
            f"({card.precision}), drop {accuracy.drop_points:.2f} points "
            f"(limit {accuracy.max_drop_points:g}), "
            f"top-1 agreement {100 * accuracy.top1_agreement:.1f}%"
        )
    print(f"wrote {path} (version {version}, {len(exported.model_bytes) / 1e6:.2f} MB)")
    sys.stdout.flush()
    return 0
