"""int8: static quantization of an exported float32 graph with ONNX Runtime's own tools.

QDQ format (QuantizeLinear/DequantizeLinear pairs around float ops, which ONNX Runtime fuses into
integer kernels), per-channel weights, activation ranges calibrated on the run's own training
images fed through the graph, whose first ops are training's own preprocessing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from skipfold.export.options import ActivationType, CalibrationMethod
from skipfold.formats.model_config import INPUT_NAME

_BATCH = 32


def calibration_sample(images: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """`count` training images drawn at random (folders of images are stored class by class,
    so the first `count` could all be one class)."""
    if count > len(images):
        raise ValueError(f"{count} calibration images asked for; the run has {len(images)}")
    chosen = np.random.default_rng(seed).choice(len(images), size=count, replace=False)
    return images[np.sort(chosen)]


def _reader(images: np.ndarray, batch: int):  # -> onnxruntime.quantization.CalibrationDataReader
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(images), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            return None if start is None else {INPUT_NAME: images[start : start + batch]}

    return Batches()


def quantize_int8(
    float_model: onnx.ModelProto,
    calibration_images: np.ndarray,
    method: CalibrationMethod = "percentile",
    activations: ActivationType = "uint8",
    batch: int = _BATCH,
) -> onnx.ModelProto:
    """The int8 QDQ graph of `float_model` (uint8 NHWC images in, as the float graph),
    weights int8 per channel, activations `activations` as calibrated by `method`, fed `batch`
    images at a time (1 for a graph whose batch is fixed at 1)."""
    from onnxruntime.quantization import CalibrationMethod as Method
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": Method.MinMax,
        "entropy": Method.Entropy,
        "percentile": Method.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="skipfold-quantize-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        prepared = Path(tmp) / "prepared.onnx"
        onnx.save(float_model, source)
        # ONNX Runtime's advised first step: shape inference and its basic graph optimizations
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            prepared,
            target,
            _reader(calibration_images, batch),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
        )
        return onnx.load(target)
