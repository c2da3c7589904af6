"""`skipfold import`'s options, declared once, and the preprocessing presets they name.

Only pydantic here, so `skipfold import --help` imports no onnx. Mean and std are on the 0-1
pixel scale (timm's convention); the standardization goes inside the graph, the resize and the
crop stay in the server's decoder (Pillow, as most networks were trained) and the model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from skipfold.export.options import DEFAULT_MAX_BATCH_SIZE, MIN_OPSET
from skipfold.formats.model_repository import check_name

PresetName = Literal["imagenet", "cifar", "unit", "none"]
ChannelOrder = Literal["rgb", "bgr"]
IMAGENET_CROP_FRACTION = 0.875  # timm's and torchvision's crop_pct: resize 256, crop 224


@dataclass(frozen=True)
class Preset:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_fraction: float | None  # resize the shorter side to input / this, then crop; None: none


PRESETS: dict[str, Preset] = {
    "imagenet": Preset((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), IMAGENET_CROP_FRACTION),
    # CIFAR-10's training images, per channel
    "cifar": Preset((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), None),
    "unit": Preset((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), None),  # pixels / 255
    "none": Preset((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), None),  # pixels as 0-255
}


class ImportOptions(BaseModel):
    """How one ONNX file becomes a model of the repository."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(
        None,
        description="model name in the repository",
        json_schema_extra={"shown_default": "the file's name without .onnx"},
    )
    preprocess: PresetName = Field(
        "imagenet",
        description="the standardization the network was trained with: imagenet (mean "
        "0.485,0.456,0.406, std 0.229,0.224,0.225, shorter side resized to input / 0.875 then "
        "center-cropped), cifar (CIFAR-10's mean and std), unit (pixels / 255), none (pixels "
        "as 0-255 numbers)",
    )
    mean: list[float] | None = Field(
        None,
        description="per-channel mean on the 0-1 scale, one number per channel the graph "
        "takes (overrides the preset's)",
        json_schema_extra={"metavar": "R,G,B"},
    )
    std: list[float] | None = Field(
        None,
        description="per-channel standard deviation on the 0-1 scale (overrides the preset's)",
        json_schema_extra={"metavar": "R,G,B"},
    )
    channel_order: ChannelOrder = Field(
        "rgb", description="the channel order the network expects (bgr: Caffe, OpenCV)"
    )
    resize: int | None = Field(
        None,
        ge=1,
        description="resize each image's shorter side to this many pixels, then crop its "
        "center to the input size (in the server's decoder, Pillow bilinear)",
        json_schema_extra={"shown_default": "the preset's: input / 0.875 for imagenet, else none"},
    )
    center_crop: int | None = Field(
        None,
        ge=1,
        description="the square input size the crop yields; needed when the graph's height "
        "and width are dynamic, else it must equal them",
    )
    max_batch_size: int = Field(
        DEFAULT_MAX_BATCH_SIZE,
        ge=1,
        description="Triton's max_batch_size in config.pbtxt (0 when the graph's batch is fixed "
        "at one: its dims then hold the batch, as Triton requires)",
    )
    opset: int = Field(
        MIN_OPSET,
        ge=MIN_OPSET,
        description="older graphs are converted to this opset with onnx's version converter",
    )
    fold_all: bool = Field(
        False,
        description="also fold the pre-activation BNs whose exact fold leaves a Mul and an Add "
        "before the ReLU (a tiny gamma, or a negative one where the input cannot be negated): "
        "no BatchNormalization left that an exact fold removes, for runtimes and quantizers that "
        "want none; on ONNX Runtime's CPU such a graph measured slower than with the BNs",
    )
    precision: Literal["fp32", "int8", "fp16"] = Field(
        "fp32",
        description="int8: ONNX Runtime's static quantization of the verified float32 graph "
        "(QDQ, int8 weights per channel), calibrated on --calibration-dir; fp16: the graph in "
        "float16 (onnxconverter-common; for GPUs); either checked on --calibration-dir and "
        "refused past --max-accuracy-drop; its name gets '-int8' or '-fp16'",
    )
    calibration_dir: Path | None = Field(
        None,
        description="int8, fp16: images to calibrate on and check with; in folders named as "
        "the classes, the check is their accuracy, else agreement with the float32 graph",
        json_schema_extra={"metavar": "DIR"},
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str | None) -> str | None:
        return name if name is None else check_name(name)

    @model_validator(mode="after")
    def _calibration_for_reduced_precision(self) -> ImportOptions:
        if self.precision != "fp32" and self.calibration_dir is None:
            raise ValueError(
                f"--precision {self.precision} needs --calibration-dir DIR (images to check it on)"
            )
        return self

    @field_validator("std")
    @classmethod
    def _positive_std(cls, std: list[float] | None) -> list[float] | None:
        if std is not None and not all(s > 0 for s in std):
            raise ValueError(f"every std must be above 0, got {std}")
        return std

    def standardization(self, channels: int) -> tuple[list[float], list[float]]:
        """(mean, std) for a graph with `channels` input channels; ValueError on a mismatch."""
        preset = PRESETS[self.preprocess]
        mean = list(self.mean) if self.mean is not None else None
        std = list(self.std) if self.std is not None else None
        if channels == 1:  # a preset's three numbers are an RGB image's: luma gets their mean
            mean = mean or [sum(preset.mean) / 3]
            std = std or [sum(preset.std) / 3]
        mean, std = mean or list(preset.mean), std or list(preset.std)
        for label, values in (("--mean", mean), ("--std", std)):
            if len(values) != channels:
                raise ValueError(
                    f"{label} has {len(values)} numbers, but the graph's input has {channels} "
                    f"channel{'s' if channels > 1 else ''}"
                )
        return mean, std

    def resize_for(self, crop: int) -> int | None:
        """The shorter side each image is resized to before the center crop; None: straight."""
        if self.resize is not None:
            return self.resize
        fraction = PRESETS[self.preprocess].crop_fraction
        return None if fraction is None else int(crop / fraction)
