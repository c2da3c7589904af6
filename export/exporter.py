"""A run folder in, a verified model.onnx out: fold, export, verify, annotate, publish."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from skipfold import __version__
from skipfold.common.io import file_sha256
from skipfold.export.folding import fold_exported
from skipfold.export.graph_stats import flops_per_image, op_counts, parameter_count
from skipfold.export.onnx_graph import ImageClassifier, export_onnx
from skipfold.export.options import DEFAULT_MAX_BATCH_SIZE, MIN_OPSET, PrecisionOptions
from skipfold.export.reduced import (
    DEFAULT_PRECISION_OPTIONS,
    RunImages,
    fp16_graph,
    int8_graph,
    run_images,
)
from skipfold.export.verify import (
    RANDOM_IMAGES,
    image_files,
    random_images,
    top1,
    verify,
)
from skipfold.formats.model_card import ModelCard, Precision, Verification
from skipfold.formats.model_repository import ModelRepository
from skipfold.models.flip_averaged import FlipAveraged
from skipfold.training.checkpoint import load_trained
from skipfold.training.run_folder import MODEL, RunConfig, RunFolder

__all__ = ["ExportedModel", "PrecisionOptions", "build", "export_run"]

# The SkipInit paper's control of scaled unnormalized branches: trained, never served
NOT_EXPORTED = ("none-scaled",)


@dataclass(frozen=True)
class ExportedModel:
    """One exported graph (its bytes carry the card) and what was measured on it."""

    model_bytes: bytes
    card: ModelCard


def build(
    run: str | Path,
    *,
    fold: bool = True,
    opset: int = MIN_OPSET,
    images: Sequence[Path] = (),
    precision: Precision = "fp32",
    options: PrecisionOptions = DEFAULT_PRECISION_OPTIONS,
    test_flip: bool = False,
) -> ExportedModel:
    """Export a run's network to ONNX bytes, verified against PyTorch, with its model card.
    int8: the verified float32 graph quantized; fp16: the network exported again in float16;
    either held to `options.max_accuracy_drop` on the run's test images against the float32
    graph (AccuracyDropError past it). `test_flip`: the graph averages each image's logits with
    its mirror image's (`FlipAveraged`), and is verified against the same in PyTorch."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be {MIN_OPSET} or later, got {opset}")
    folder = RunFolder(run)
    variant = folder.read_config().model.variant
    if variant in NOT_EXPORTED:
        raise ValueError(
            f"{variant} is a training ablation of the SkipInit paper and is not exported; "
            "export bn, skipinit, skipinit-reg or none"
        )
    reduced_data = run_images(folder, options, precision, test_flip)  # checked first
    model, config = load_trained(folder)
    data = config.data
    per_image = data.standardize == "per-image"
    network = FlipAveraged(model) if test_flip else model
    unfolded = export_onnx(
        ImageClassifier(network, data.mean, data.std, per_image), data.input_size, opset
    )
    graph = fold_exported(unfolded) if fold else unfolded
    check = np.concatenate(
        [random_images(RANDOM_IMAGES, data.input_size), image_files(images, data.input_size)]
    )
    figures = verify(
        graph.SerializeToString(), network, data.mean, data.std, check, per_image=per_image
    )
    flip_accuracy = _graph_accuracy(graph, reduced_data) if test_flip else None
    reduced: dict = {}
    if precision == "int8":
        graph, reduced = int8_graph(graph, reduced_data, options)
    elif precision == "fp16":
        half = ImageClassifier(network, data.mean, data.std, per_image, dtype=torch.float16)
        graph, reduced = fp16_graph(graph, half, check, reduced_data, options)
    card = _card(folder, config, fold, graph, unfolded, figures, precision, reduced)
    if test_flip:  # the mirror is a second image's work; the run's own figure had no flips
        flops = 2 * card.flops_per_image
        update = {"test_flip": True, "test_accuracy": flip_accuracy, "flops_per_image": flops}
        card = card.model_copy(update=update)
    onnx.helper.set_model_props(graph, card.to_metadata())
    graph.producer_name, graph.producer_version = "skipfold", __version__
    return ExportedModel(graph.SerializeToString(deterministic=True), card)


def _graph_accuracy(graph: onnx.ModelProto, data: RunImages) -> float:
    """Test accuracy of a float32 graph in ONNX Runtime on the run's test images."""
    predicted = top1(graph.SerializeToString(), data.test_images)
    return float((predicted == data.test_labels).mean())


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
        architecture=config.model.architecture,
        activation=config.model.activation,
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
    options: PrecisionOptions = DEFAULT_PRECISION_OPTIONS,
    test_flip: bool = False,
) -> tuple[ExportedModel, int, Path]:
    """Build and verify, then add the model to `repo` as the next version of `name`.

    The default name is the run folder's, with "-unfolded" appended for an unfolded export,
    "-int8" for an int8 one and "-flip" for one with test-time flips: each is a model of its
    own, as Triton users keep them. Nothing is written to the repository unless verification
    passed.
    """
    if name is None:
        name = Path(run).resolve().name + ("" if fold else "-unfolded")
        name += "" if precision == "fp32" else f"-{precision}"
        name += "-flip" if test_flip else ""
    repository = ModelRepository(repo)
    # config.pbtxt says what a version computes; versions of one name must agree on it
    parameters = {"precision": precision} if precision != "fp32" else {}
    parameters |= {"test_flip": "true"} if test_flip else {}
    data = RunFolder(run).read_config().data
    repository.check_publishable(
        name,
        classes=data.classes,
        input_size=data.input_size,
        max_batch_size=max_batch_size,
        parameters=parameters,
    )
    exported = build(
        run,
        fold=fold,
        opset=opset,
        images=images,
        precision=precision,
        options=options,
        test_flip=test_flip,
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
