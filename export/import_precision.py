"""int8 and fp16 for imported models: the verified float32 graph quantized by ONNX Runtime (as
`skipfold export --precision int8` does), or converted to float16 (export/float16.py, inputs
and outputs kept as they are), calibrated and checked on the user's own images.

Images in class folders named as the model's classes give an accuracy check against their
labels; other images a check against the float32 graph's own predictions (its top-1 taken as
the label, so the drop is the share of images whose class changed). Either way the import is
refused past `--max-accuracy-drop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from skipfold.common.images import IMAGE_SUFFIXES
from skipfold.export.float16 import to_float16
from skipfold.export.options import PrecisionOptions
from skipfold.export.quantize import calibration_sample, quantize_int8
from skipfold.export.verify import accuracy_drop, check_finite, image_files, onnx_outputs
from skipfold.formats.model_card import AccuracyCheck, Quantization


@dataclass(frozen=True)
class CalibrationImages:
    images: np.ndarray  # uint8 [N, H, W, 3], decoded as the server decodes them
    labels: np.ndarray | None  # class indices, where the images sit in class folders


def calibration_images(
    folder: Path, classes: list[str], size: tuple[int, int], resize: int | None
) -> CalibrationImages:
    """Every image under `folder`, with labels if each sits in a folder named as a class."""
    if not folder.is_dir():
        raise ValueError(f"--calibration-dir {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"--calibration-dir {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    labelled = all(p.parent != folder and p.parent.name in classes for p in files)
    labels = np.array([classes.index(p.parent.name) for p in files]) if labelled else None
    return CalibrationImages(image_files(files, size, resize), labels)


def _top1(model_bytes: bytes, images: np.ndarray, batch: int) -> np.ndarray:
    chunks = range(0, len(images), batch)
    parts = [onnx_outputs(model_bytes, images[i : i + batch])[0] for i in chunks]
    return np.concatenate(parts).argmax(1)


def int8_import(
    graph: onnx.ModelProto, data: CalibrationImages, options: PrecisionOptions, batch: int
) -> tuple[onnx.ModelProto, dict]:
    """The int8 graph and its card fields; AccuracyDropError past the limit."""
    import onnxruntime

    count = min(options.calibration_images, len(data.images))
    calibration = calibration_sample(data.images, count)
    method, activations = options.calibration_method, options.activations
    quantized = quantize_int8(graph, calibration, method, activations, batch)
    figures = _checked(graph, quantized, data, options, batch)
    fields = {
        "quantization": Quantization(
            tool=f"onnxruntime {onnxruntime.__version__} quantize_static",
            activations=activations,
            calibration_method=method,
            calibration_images=count,
        ),
        "accuracy_check": AccuracyCheck(**figures),
    }
    return quantized, fields


def _checked(
    graph: onnx.ModelProto,
    candidate: onnx.ModelProto,
    data: CalibrationImages,
    options: PrecisionOptions,
    batch: int,
) -> dict:
    """The accuracy check of `candidate` against the float32 `graph` on the images."""
    reference = _top1(graph.SerializeToString(), data.images, batch)
    answers = _top1(candidate.SerializeToString(), data.images, batch)
    labels = data.labels if data.labels is not None else reference
    figures = accuracy_drop(reference, answers, labels, options.max_accuracy_drop)
    figures["labelled_by"] = "labels" if data.labels is not None else "float32 top-1"
    return figures


def fp16_import(
    graph: onnx.ModelProto,
    data: CalibrationImages,
    check: np.ndarray,
    options: PrecisionOptions,
    batch: int,
) -> tuple[onnx.ModelProto, dict]:
    """The float16 graph and its card fields, after three checks: every weight within float16's
    range (the converter would clip it silently), finite logits on the `check` images, and the
    accuracy on the calibration images within the limit (AccuracyDropError past it)."""
    half = to_float16(graph, instead="import it as")
    chunks = range(0, len(check), batch)
    logits = [onnx_outputs(half.SerializeToString(), check[i : i + batch])[0] for i in chunks]
    check_finite(np.concatenate(logits), "fp16")
    return half, {"accuracy_check": AccuracyCheck(**_checked(graph, half, data, options, batch))}
