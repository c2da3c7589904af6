"""`skipfold export`'s options, declared once: type, bound, default and help per field.

The exporter takes them and the command line's flags are generated from them
(`common.model_flags`). Only pydantic here, so `skipfold export --help` imports no torch or onnx.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skipfold.formats.model_card import Precision
from skipfold.formats.model_repository import check_name

CalibrationMethod = Literal["minmax", "entropy", "percentile"]
ActivationType = Literal["uint8", "int8"]
MIN_OPSET = 18  # the ONNX opset the graph passes need (and the default)
DEFAULT_MAX_BATCH_SIZE = 64


class PrecisionOptions(BaseModel):
    """How a reduced-precision export is made (calibration: int8 only) and the test accuracy it
    must keep against the float32 graph (int8 and fp16)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calibration_method: CalibrationMethod = Field(
        "percentile",
        description="int8: how each activation's range is read from the calibration "
        "(percentile: ONNX Runtime's 99.999th percentile of |x|, blind to rare outliers; on the "
        "demo SkipInit model minmax lost 0.60 points, percentile 0.30)",
    )
    calibration_images: int = Field(
        256, ge=1, description="int8: training images drawn at random for calibration"
    )
    activations: ActivationType = Field(
        "uint8",
        description="int8: the activations' type (uint8: ONNX Runtime's advice for x86 CPUs)",
    )
    max_accuracy_drop: float = Field(
        0.5,
        ge=0,
        allow_inf_nan=False,
        description="int8, fp16: the most test accuracy (percentage points) the export may lose",
        json_schema_extra={"metavar": "POINTS"},
    )


class ExportOptions(BaseModel):
    """What one export makes of a run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(
        None,
        description="model name in the repository",
        json_schema_extra={
            "shown_default": "the run folder's name, plus '-unfolded' with --no-fold, "
            "'-int8' or '-fp16' with --precision, '-flip' with --test-flip"
        },
    )
    fold: bool = Field(
        True,
        description="fold every BatchNormalization into its convolution; --no-fold keeps them "
        "(the baseline of the latency comparison)",
        json_schema_extra={"flag": "--no-fold"},
    )
    opset: int = Field(MIN_OPSET, ge=MIN_OPSET, description="ONNX opset")
    max_batch_size: int = Field(
        DEFAULT_MAX_BATCH_SIZE, ge=1, description="Triton's max_batch_size in config.pbtxt"
    )
    test_flip: bool = Field(
        False,
        description="test-time augmentation in the graph: each image's logits averaged with its "
        "mirror image's (twice the work per image; +0.5 to +1.0 points on CIFAR-10 for an "
        "8-epoch WRN-16-2); the card's test accuracy is then measured at export, on the run's "
        "test images, which must be at hand",
    )
    precision: Precision = Field(
        "fp32",
        description="int8: ONNX Runtime's static quantization of the verified float32 graph "
        "(QDQ, int8 weights per channel), calibrated on the run's training images, for CPUs; "
        "fp16: the network in float16 for CUDA's tensor cores, refused if float16 overflows. "
        "Either way the test accuracy is measured against the float32 graph on the run's test "
        "images and the export is refused past --max-accuracy-drop",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str | None) -> str | None:
        return name if name is None else check_name(name)
