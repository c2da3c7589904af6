"""The model card: what skipfold knows about an exported model, inside the ONNX file itself.

Export writes a `ModelCard` into the graph's metadata_props (string keys and values, so any
ONNX tool shows them); the server, the benchmark and the demo read it back through the same
type. A model without a card (not exported by skipfold) is still served; it just describes less.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from skipfold.common.messages import one_line

CARD_KEY = "skipfold_card"  # the card's format version, also how a card is recognized
CARD_VERSION = "1"


class Verification(BaseModel):
    """The export's proof: the graph against the PyTorch model, on these images."""

    model_config = ConfigDict(frozen=True)

    images: int
    max_abs_logit_diff: float
    max_abs_probability_diff: float
    top1_agreement: float
    tolerance: float


Precision = Literal["fp32", "int8", "fp16"]
PRECISIONS: tuple[str, ...] = Precision.__args__


class Quantization(BaseModel):
    """How an int8 graph was made from the float32 one."""

    model_config = ConfigDict(frozen=True)

    tool: str  # e.g. "onnxruntime 1.32.0 quantize_static"
    format: str = "QDQ"
    weights: str = "int8, per channel"
    activations: str  # "uint8" or "int8", per tensor
    calibration_method: str  # minmax, entropy, percentile
    calibration_images: int  # at random from the run's training images (import: its folder)


class AccuracyCheck(BaseModel):
    """A reduced-precision graph against its float32 graph, on the run's labelled test images:
    the float32 graph in ONNX Runtime as served; int8 there too, fp16 by PyTorch's float16
    kernels on the CPU (ONNX Runtime's CPU provider computes float16 chains in float32)."""

    model_config = ConfigDict(frozen=True)

    images: int
    # "labels": the images' own (the run's test set; an import's class folders); "float32
    # top-1": an import's unlabelled images, the float32 graph's predictions taken as labels
    labelled_by: Literal["labels", "float32 top-1"] = "labels"
    reference_accuracy: float  # the float32 graph's
    accuracy: float
    top1_agreement: float
    max_drop_points: float  # the limit the export was held to

    @property
    def drop_points(self) -> float:
        return 100 * (self.reference_accuracy - self.accuracy)


class ImportedFrom(BaseModel):
    """The ONNX file `skipfold import` read: which one, what wrote it, what it takes."""

    model_config = ConfigDict(frozen=True)

    file: str  # its name, without the folder
    sha256: str
    producer: str  # as the file says, e.g. "pytorch 2.13.0"
    opset: int  # the file's own; the imported graph may have been converted to a later one
    input_type: str  # the source graph's input element type, e.g. "float32"
    input_layout: Literal["NCHW", "NHWC"]
    channels: int  # 3, or 1 (the RGB image's luma, as Pillow's "L" mode computes it)
    channel_order: Literal["rgb", "bgr"]
    outputs: Literal["logits", "probabilities"]  # probabilities: its final Softmax removed


class FoldedBatchNorm(BaseModel):
    """One BatchNormalization of an imported graph: what it was folded into, or why kept."""

    model_config = ConfigDict(frozen=True)

    name: str
    folded_into: str | None = None
    reason: str | None = None


IMPORTED = "imported"  # the variant of a model `skipfold import` made


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: list[str]
    input_size: tuple[int, int]  # (height, width); the graph takes uint8 [N, H, W, 3]
    variant: str  # "bn", "skipinit", or IMPORTED
    depth: int = 0  # a Wide-ResNet's (the mlp's hidden layers); 0 for an imported network
    width: int = 0  # the width factor (the mlp's units)
    architecture: str = "wrn"  # the family's (models.spec.ARCHITECTURES); "" when imported
    activation: str = "relu"  # the family's (models.spec.ACTIVATIONS); "" when imported
    folded: bool  # every BatchNorm (and alpha) folded into the convolutions
    dataset: str = ""
    standardize: Literal["dataset", "per-image"] = "dataset"  # inside the graph
    mean: list[float]
    std: list[float]
    # the run's own (PyTorch, no flips); with test_flip, the float32 flip graph's in ONNX Runtime
    test_accuracy: float | None = None
    source_run: str = ""
    weights_sha256: str = ""  # of the run's model.safetensors
    skipfold_version: str
    exporter: str = ""
    parameters: int
    flops_per_image: int  # 2 x the multiply-adds of every conv and linear layer
    op_counts: dict[str, int] = {}
    op_counts_unfolded: dict[str, int] = {}
    verification: Verification | None = None  # the float32 graph against PyTorch
    precision: Precision = "fp32"
    quantization: Quantization | None = None  # int8
    accuracy_check: AccuracyCheck | None = None  # int8 and fp16
    # the graph averages each image's logits with its mirror image's (`skipfold export
    # --test-flip`): the same weights, twice the work per image
    test_flip: bool = False
    # What the server does to an image before the graph: resize its shorter side to this many
    # pixels (Pillow, bilinear), then crop the center to input_size; None: resize straight to
    # input_size (skipfold's own models, trained on images of that size).
    resize_shorter: int | None = None
    imported_from: ImportedFrom | None = None
    fold_report: list[FoldedBatchNorm] = []

    @property
    def kind(self) -> str:
        """'bn-folded', 'bn-unfolded', 'skipinit', 'bn-folded-int8', ...: what the latency
        comparison compares."""
        if self.variant == "bn":
            kind = "bn-folded" if self.folded else "bn-unfolded"
        else:
            kind = self.variant
        return kind if self.precision == "fp32" else f"{kind}-{self.precision}"

    def to_metadata(self) -> dict[str, str]:
        """ONNX metadata_props: strings as they are, everything else as JSON ('' for none)."""
        metadata = {CARD_KEY: CARD_VERSION}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                metadata[name] = ""
            elif isinstance(value, str):
                metadata[name] = value
            else:
                metadata[name] = json.dumps(value)
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str = "model") -> ModelCard | None:
        """The card in a model's metadata; None if it has none. ValueError if it is unreadable.

        Models exported by skipfold 0.1 carry the same keys without the version key.
        """
        version = metadata.get(CARD_KEY)
        if version is None and "skipfold_version" not in metadata:
            return None
        if version not in (None, CARD_VERSION):
            raise ValueError(
                f"{source}: model card version {version!r} is newer than this skipfold"
            )
        values = {}
        for name, info in cls.model_fields.items():
            if name not in metadata:
                continue
            text = metadata[name]
            if _is_text(info.annotation):
                values[name] = text
            elif text:
                try:
                    values[name] = json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError(f"{source}: model card field {name} is not JSON") from None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ValueError(f"{source}: invalid model card: {one_line(exc)}") from None

    @classmethod
    def read(cls, path: str | Path) -> ModelCard | None:
        """The card of an ONNX file (read with ONNX Runtime, no graph optimization)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls.from_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))


def _is_text(annotation: object) -> bool:
    return annotation is str or typing.get_origin(annotation) is Literal
