"""Reduced precision: what an int8 or fp16 export needs beyond the verified float32 graph (the
run's own images), makes (the int8 graph), and is held to (the test accuracy of the float32
graph, within `max_accuracy_drop`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from skipfold.export.float16 import to_float16
from skipfold.export.onnx_graph import ImageClassifier
from skipfold.export.options import PrecisionOptions
from skipfold.export.quantize import calibration_sample, quantize_int8
from skipfold.export.verify import (
    VerificationError,
    accuracy_drop,
    check_accuracy_drop,
    check_finite,
    classifier_logits,
    onnx_outputs,
    top1,
)
from skipfold.formats.model_card import AccuracyCheck, Quantization
from skipfold.training.run_folder import RunFolder

DEFAULT_PRECISION_OPTIONS = PrecisionOptions()


@dataclass(frozen=True)
class RunImages:
    calibration: np.ndarray  # uint8 training images, drawn at random (int8 only)
    test_images: np.ndarray
    test_labels: np.ndarray


def run_images(
    folder: RunFolder, options: PrecisionOptions, precision: str, test_flip: bool = False
) -> RunImages | None:
    """The run's own images for calibration (int8) and the accuracy checks (int8, fp16, and the
    test accuracy of a graph with test-time flips), loaded before any export work so that missing
    data or too many calibration images is said at once. None for fp32 without flips."""
    from skipfold.training.datasets import load_dataset

    if precision == "fp32" and not test_flip:
        return None
    calibrate = precision == "int8"
    config = folder.read_config()
    try:
        data = load_dataset(
            config.data.dataset, config.data.data_dir, seed=config.recipe.seed, download=False
        ).limit(config.recipe.train_limit, config.recipe.test_limit)
        calibration = (
            calibration_sample(data.train_images, options.calibration_images)
            if calibrate
            else data.train_images[:0]
        )
    except (OSError, ValueError) as exc:
        what = "calibration and the check" if calibrate else "the accuracy check"
        who = "--test-flip" if precision == "fp32" else precision
        raise ValueError(f"{who} needs the run's data for {what}: {exc}") from None
    return RunImages(calibration, data.test_images, data.test_labels)


def int8_graph(
    graph: onnx.ModelProto, data: RunImages, options: PrecisionOptions
) -> tuple[onnx.ModelProto, dict]:
    """The int8 graph and its card fields, checked against the float32 graph on the run's test
    images."""
    import onnxruntime

    method, activations = options.calibration_method, options.activations
    quantized = quantize_int8(graph, data.calibration, method, activations)
    figures = check_accuracy_drop(
        graph.SerializeToString(),
        quantized.SerializeToString(),
        data.test_images,
        data.test_labels,
        options.max_accuracy_drop,
    )
    fields = {
        "quantization": Quantization(
            tool=f"onnxruntime {onnxruntime.__version__} quantize_static",
            activations=activations,
            calibration_method=method,
            calibration_images=len(data.calibration),
        ),
        "accuracy_check": AccuracyCheck(**figures),
    }
    return quantized, fields


def fp16_graph(
    graph: onnx.ModelProto,
    half: ImageClassifier,
    check: np.ndarray,
    data: RunImages,
    options: PrecisionOptions,
) -> tuple[onnx.ModelProto, dict]:
    """The fp16 graph (the float32 graph converted: export/float16.py) and its card fields,
    after three checks against the float32 `graph`: every weight finite in float16 (the
    graph's, and the network's); the network's float16 arithmetic (PyTorch's float16 kernels, see
    verify.classifier_logits) finite on the check and test images and within the accuracy
    limit on the test images, which the card records; and the fp16 graph itself, run by ONNX
    Runtime, within the limit too (a wrong conversion, not float16, would fail there). The
    standardization before the first Conv and the softmax stay float32 (per-image
    standardization squares pixel sums past float16's range; clients keep their types)."""
    half_graph = to_float16(graph, _float32_nodes(graph), instead="export")
    values = [t for t in [*half.parameters(), *half.buffers()] if t.is_floating_point()]
    overflowed = sum(int((~t.isfinite()).sum()) for t in values)
    if overflowed:
        raise VerificationError(
            f"the fp16 network has {overflowed} weights past float16's range (65,504); "
            "export fp32 or int8"
        )
    logits = classifier_logits(half, np.concatenate([check, data.test_images]))
    check_finite(logits, "fp16")
    reference = top1(graph.SerializeToString(), data.test_images)
    limit = options.max_accuracy_drop
    figures = accuracy_drop(reference, logits[len(check) :].argmax(1), data.test_labels, limit)
    exported = half_graph.SerializeToString()
    check_finite(onnx_outputs(exported, check)[0], "fp16")
    accuracy_drop(reference, top1(exported, data.test_images), data.test_labels, limit)
    return half_graph, {"accuracy_check": AccuracyCheck(**figures)}


def _float32_nodes(graph: onnx.ModelProto) -> list[int]:
    """The nodes that stay float32: every one before the first Conv (decoding and
    standardization), and the softmax."""
    nodes = list(graph.graph.node)
    first = next(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    return [*range(first), *(i for i, n in enumerate(nodes) if n.op_type == "Softmax")]
