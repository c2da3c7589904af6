"""A run folder in, a verified model.onnx out: fold, export, verify, annotate, publish."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from skipfold import __version__
from skipfold.common.images import decode_image
from skipfold.export.fold import fold_model
from skipfold.export.onnx_graph import (
    MIN_OPSET,
    ImageClassifier,
    export_onnx,
    flops_per_image,
    op_counts,
    parameter_count,
)
from skipfold.export.quantize import (
    ActivationType,
    CalibrationMethod,
    calibration_sample,
    quantize_int8,
)
from skipfold.export.verify import (
    RANDOM_IMAGES,
    check_accuracy_drop,
    check_finite,
    random_images,
    verify,
)
from skipfold.formats.model_card import (
    AccuracyCheck,
    ModelCard,
    Precision,
    Quantization,
    Verification,
)
from skipfold.formats.model_repository import ModelRepository
from skipfold.training.checkpoint import load_trained
from skipfold.training.run_folder import MODEL, RunConfig, RunFolder

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_MAX_ACCURACY_DROP = 0.5  # points of test accuracy


@dataclass(frozen=True)
class PrecisionOptions:
    """How a reduced-precision export is made (calibration: int8 only) and the test accuracy it
    must keep against the float32 graph (int8 and fp16)."""

    calibration_method: CalibrationMethod = "percentile"
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    activations: ActivationType = "uint8"
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP


@dataclass(frozen=True)
class ExportedModel:
    """One exported graph (its bytes carry the card) and what was measured on it."""

    model_bytes: bytes
    card: ModelCard


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _real_images(paths: Sequence[Path], input_size: Sequence[int]) -> np.ndarray:
    images = []
    for path in paths:
        try:
            images.append(decode_image(Path(path).read_bytes(), input_size))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return np.stack(images) if images else np.zeros((0, *input_size, 3), np.uint8)


def build(
    run: str | Path,
    *,
    fold: bool = True,
    opset: int = MIN_OPSET,
    images: Sequence[Path] = (),
    precision: Precision = "fp32",
    options: PrecisionOptions = PrecisionOptions(),
) -> ExportedModel:
    """Export a run's network to ONNX bytes, verified against PyTorch, with its model card.
    int8: the verified float32 graph quantized; fp16: the network exported again in float16;
    either held to `options.max_accuracy_drop` on the run's test images against the float32
    graph (AccuracyDropError past it)."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be {MIN_OPSET} or later, got {opset}")
    folder = RunFolder(run)
    test_data = _test_data(folder, options, precision)  # checked first
    model, config = load_trained(folder)
    data = config.data
    per_image = data.standardize == "per-image"
    unfolded = export_onnx(
        ImageClassifier(model, data.mean, data.std, per_image), data.input_size, opset
    )
    graph, network = unfolded, model
    if fold:
        network = fold_model(model)
        folded = ImageClassifier(network, data.mean, data.std, per_image)
        graph = export_onnx(folded, data.input_size, opset)
    check = np.concatenate(
        [random_images(RANDOM_IMAGES, data.input_size), _real_images(images, data.input_size)]
    )
    figures = verify(
        graph.SerializeToString(), model, data.mean, data.std, check, per_image=per_image
    )
    reduced: dict = {}
    if precision == "int8":
        graph, reduced = _quantized(graph, test_data, options)
    elif precision == "fp16":
        half = ImageClassifier(network, data.mean, data.std, per_image, dtype=torch.float16)
        half_graph = export_onnx(half, data.input_size, opset)
        graph, reduced = _half(graph, half_graph, check, test_data, options)
    card = _card(folder, config, fold, graph, unfolded, figures, precision, reduced)
    onnx.helper.set_model_props(graph, card.to_metadata())
    graph.producer_name, graph.producer_version = "skipfold", __version__
    return ExportedModel(graph.SerializeToString(deterministic=True), card)


def _card(
    folder: RunFolder,
    config: RunConfig,
    fold: bool,
    graph: onnx.ModelProto,
    unfolded: onnx.ModelProto,
    figures: dict,
    precision: Precision,
    reduced: dict,
) -> ModelCard:
    """What the exported graph carries about itself, its run and its checks."""
    data = config.data
    return ModelCard(
        classes=data.classes,
        input_size=data.input_size,
        variant=config.model.variant,
        depth=config.model.depth,
        width=config.model.width,
        folded=fold,
        dataset=data.dataset,
        standardize=data.standardize,
        mean=data.mean,
        std=data.std,
        test_accuracy=folder.last_test_accuracy(),
        source_run=folder.path.resolve().name,
        weights_sha256=file_sha256(folder / MODEL),
        skipfold_version=__version__,
        exporter=f"torch {torch.__version__}, onnx {onnx.__version__}",
        parameters=parameter_count(graph),
        flops_per_image=flops_per_image(graph),
        op_counts=op_counts(graph),
        op_counts_unfolded=op_counts(unfolded),
        verification=Verification(**figures),
        precision=precision,
        **reduced,
    )


@dataclass(frozen=True)
class _TestData:
    calibration: np.ndarray  # uint8 training images, drawn at random (int8 only)
    test_images: np.ndarray
    test_labels: np.ndarray


def _test_data(folder: RunFolder, options: PrecisionOptions, precision: str) -> _TestData | None:
    """A reduced precision's data: the run's own images for calibration (int8) and the accuracy
    check, loaded before any export work so that missing data or too many calibration images is
    said at once. None for fp32."""
    from skipfold.training.datasets import load_dataset

    if precision == "fp32":
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
        raise ValueError(f"{precision} needs the run's data for {what}: {exc}") from None
    return _TestData(calibration, data.test_images, data.test_labels)


def _quantized(
    graph: onnx.ModelProto, data: _TestData, options: PrecisionOptions
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


def _half(
    graph: onnx.ModelProto,
    half: onnx.ModelProto,
    check: np.ndarray,
    data: _TestData,
    options: PrecisionOptions,
) -> tuple[onnx.ModelProto, dict]:
    """The fp16 graph and its card fields: finite on the verification images, then held to
    the accuracy limit against the float32 graph on the run's test images."""
    check_finite(half.SerializeToString(), check, "fp16")
    figures = check_accuracy_drop(
        graph.SerializeToString(),
        half.SerializeToString(),
        data.test_images,
        data.test_labels,
        options.max_accuracy_drop,
    )
    return half, {"accuracy_check": AccuracyCheck(**figures)}


def export_run(
    run: str | Path,
    repo: str | Path,
    *,
    name: str | None = None,
    fold: bool = True,
    opset: int = MIN_OPSET,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    images: Sequence[Path] = (),
    precision: Precision = "fp32",
    options: PrecisionOptions = PrecisionOptions(),
) -> tuple[ExportedModel, int, Path]:
    """Build and verify, then add the model to `repo` as the next version of `name`.

    The default name is the run folder's, with "-unfolded" appended for an unfolded export and
    "-int8" for an int8 one: each precision is a model of its own, as Triton users keep them.
    Nothing is written to the repository unless verification passed.
    """
    if name is None:
        name = Path(run).resolve().name + ("" if fold else "-unfolded")
        name += "" if precision == "fp32" else f"-{precision}"
    repository = ModelRepository(repo)
    parameters = None if precision == "fp32" else {"precision": precision}
    data = RunFolder(run).read_config().data
    repository.check_publishable(
        name,
        classes=data.classes,
        input_size=data.input_size,
        max_batch_size=max_batch_size,
        parameters=parameters,
    )
    exported = build(
        run, fold=fold, opset=opset, images=images, precision=precision, options=options
    )
    version, path = repository.publish(
        name,
        exported.model_bytes,
        classes=exported.card.classes,
        input_size=exported.card.input_size,
        max_batch_size=max_batch_size,
        parameters=parameters,
    )
    return exported, version, path
