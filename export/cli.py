"""`skipfold export`: fold a trained run and add it to a Triton-layout model repository."""

from __future__ import annotations

import argparse
import sys

from skipfold.common import arguments
from skipfold.formats.model_repository import check_name, writable_repository
from skipfold.training.run_folder import trained_run

# skipfold.export.{onnx_graph,exporter,reduced,quantize}'s; not imported: --help stays instant
MIN_OPSET = 18
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_MAX_ACCURACY_DROP = 0.5
PRECISIONS = ("fp32", "int8", "fp16")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("uint8", "int8")


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
        "plus '-unfolded' with --no-fold, '-flip' with --test-flip)",
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
    parser.add_argument(
        "--test-flip",
        action="store_true",
        help="test-time augmentation in the graph: each image's logits averaged with its mirror "
        "image's (twice the work per image; +0.5 to +1.0 points on CIFAR-10 for an 8-epoch "
        "WRN-16-2); the card's test accuracy is then measured at export, on the run's test images, "
        "which must be at hand; the default name gets '-flip'",
    )
    _add_precision_arguments(parser)


def _add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    reduced = parser.add_argument_group(
        "precision",
        "int8: ONNX Runtime's static quantization of the verified float32 graph (QDQ, int8 "
        "weights per channel), calibrated on the run's training images, for CPUs. fp16: the "
        "network in float16 (input, standardization, softmax and outputs as in fp32), for "
        "CUDA's tensor cores, checked with PyTorch's float16 kernels on the CPU and refused if "
        "float16 overflows; ONNX Runtime's CPU provider runs it too, in float32 between casts, "
        "slower than fp32. Either way the test accuracy is measured against the float32 graph on "
        "the run's test images and the export is refused past --max-accuracy-drop. Each "
        "precision is its own model: the default name gets '-int8' or '-fp16'.",
    )
    reduced.add_argument("--precision", choices=PRECISIONS, default="fp32")
    reduced.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default="percentile",
        help="int8: how each activation's range is read from the calibration (percentile: "
        "ONNX Runtime's 99.999th percentile of |x|, blind to rare outliers; on the demo SkipInit "
        "model minmax lost 0.60 points, percentile 0.30)",
    )
    reduced.add_argument(
        "--calibration-images",
        type=arguments.at_least(1),
        default=DEFAULT_CALIBRATION_IMAGES,
        help="int8: training images drawn at random for calibration",
    )
    reduced.add_argument(
        "--activations",
        choices=ACTIVATION_TYPES,
        default="uint8",
        help="int8: the activations' type (uint8: ONNX Runtime's advice for x86 CPUs)",
    )
    reduced.add_argument(
        "--max-accuracy-drop",
        type=arguments.at_least(0, float),
        default=DEFAULT_MAX_ACCURACY_DROP,
        metavar="POINTS",
        help="int8, fp16: the most test accuracy (percentage points) the export may lose",
    )


def _format_ops(before: dict[str, int], after: dict[str, int]) -> str:
    names = list(dict.fromkeys([*before, *after]))
    width = max(len(n) for n in names)
    lines = [f"  {'op':<{width}}  unfolded  exported"]
    lines += [f"  {n:<{width}}  {before.get(n, 0):>8}  {after.get(n, 0):>8}" for n in names]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from skipfold.export.exporter import PrecisionOptions, export_run

    options = PrecisionOptions(
        calibration_method=args.calibration_method,
        calibration_images=args.calibration_images,
        activations=args.activations,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    exported, version, path = export_run(
        args.run,
        args.repo,
        name=args.name,
        fold=args.fold,
        opset=args.opset,
        max_batch_size=args.max_batch_size,
        images=args.verify_images,
        precision=args.precision,
        options=options,
        test_flip=args.test_flip,
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
