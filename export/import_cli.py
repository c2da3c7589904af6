"""`skipfold import MODEL.onnx --repo R`: an image classifier from any framework, folded,
verified and added to a Triton-layout model repository."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skipfold.common import arguments
from skipfold.common.model_flags import add_field_flags, given
from skipfold.export.cli import NAME_CHECK, add_repository_arguments
from skipfold.export.import_options import ImportOptions
from skipfold.export.options import PrecisionOptions
from skipfold.formats.model_card import FoldedBatchNorm


def read_classes(path: str) -> list[str]:
    """Class names from a file: a JSON list of strings, or one name a line."""
    text = arguments.existing_file(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON list: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: a JSON list of class names must hold strings only")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=arguments.existing_file, help="the ONNX file (external data beside it)"
    )
    add_repository_arguments(parser)
    add_field_flags(parser, ImportOptions, ImportOptions.model_fields, types=NAME_CHECK)
    reduced = parser.add_argument_group("int8, fp16", "calibration and the accuracy it must keep")
    add_field_flags(reduced, PrecisionOptions, PrecisionOptions.model_fields)
    parser.add_argument(
        "--classes",
        type=arguments.checked(read_classes),
        metavar="FILE",
        help="class names: one a line, or a JSON list (default: the class numbers)",
    )


def format_report(report: list[FoldedBatchNorm]) -> str:
    """Each BatchNormalization: folded into what, or kept and why; then the totals."""
    if not report:
        return "no BatchNormalization in the graph"
    width = min(48, max(len(entry.name) for entry in report))
    lines = [f"  {'BatchNormalization':<{width}}  folded into, or kept because"]
    for entry in report:
        what = entry.folded_into or f"KEPT: {entry.reason}"
        lines.append(f"  {entry.name:<{width}}  {what}")
    folded = sum(entry.folded_into is not None for entry in report)
    lines.append(f"{folded} of {len(report)} BatchNormalization nodes folded")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from skipfold.export.importer import import_model

    options = ImportOptions(**given(args, ImportOptions))
    precision = PrecisionOptions(**given(args, PrecisionOptions))
    imported, version, path = import_model(
        Path(args.model), args.repo, options, args.classes, args.verify_images or (), precision
    )
    card = imported.card
    source, check = card.imported_from, card.verification
    print(
        f"{source.file}: {source.producer}, opset {source.opset}, {source.input_type} "
        f"{source.input_layout} {source.channels}-channel input, {source.outputs} out"
    )
    print(format_report(card.fold_report))
    if imported.mul_add_folded:
        print(
            f"{imported.mul_add_folded} per-channel Mul/Add by constants folded into the Conv "
            "or BatchNormalization before them"
        )
    height, width = card.input_size
    resize = f"resized to {height}x{width}"
    if card.resize_shorter:
        resize = f"shorter side to {card.resize_shorter}, center crop {height}x{width}"
    print(
        f"input: uint8 [{1 if imported.fixed_batch else 'N'}, {height}, {width}, 3] ({resize} by "
        "the server's decoder); "
        f"mean {card.mean}, std {card.std}, {source.channel_order.upper()}, inside the graph"
    )
    print(
        f"verified on {check.images} images against the unfolded graph (ONNX Runtime, no graph "
        f"optimizations): max |logit diff| {check.max_abs_logit_diff:.2e} (tolerance "
        f"{check.tolerance:.2g}), top-1 agreement {100 * check.top1_agreement:.1f}%"
    )
    if card.accuracy_check:
        accuracy = card.accuracy_check
        labels = accuracy.labelled_by == "labels"
        against = "their labels" if labels else "the float32 graph's top-1"
        calibrated = (
            f"calibrated on {card.quantization.calibration_images} images; "
            if card.quantization
            else ""
        )
        print(
            f"{card.precision}: {calibrated}on {accuracy.images} images against {against}: "
            f"{100 * accuracy.reference_accuracy:.2f}% (fp32) -> {100 * accuracy.accuracy:.2f}% "
            f"({card.precision}), drop {accuracy.drop_points:.2f} points (limit "
            f"{accuracy.max_drop_points:g})"
        )
    print(f"wrote {path} (version {version}, {len(imported.model_bytes) / 1e6:.2f} MB)")
    sys.stdout.flush()
    return 0
