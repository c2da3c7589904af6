"""A run folder in, a verified model.onnx out: fold, export, verify, annotate, publish."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export import repository
from export.fold import fold_model
from export.onnx_graph import (
    MIN_OPSET,
    ImageClassifier,
    export_onnx,
    flops_per_image,
    op_counts,
    parameter_count,
)
from export.verify import RANDOM_IMAGES, random_images, verify
from skipfold import __version__
from skipfold.images import decode_image
from training import run_folder

DEFAULT_MAX_BATCH_SIZE = 64


@dataclass
class ExportedModel:
    """One exported graph and what was measured on it."""

    model_bytes: bytes
    folded: bool
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    parameters: int
    flops_per_image: int
    verification: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)


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
    run: Path,
    *,
    fold: bool = True,
    opset: int = MIN_OPSET,
    images: Sequence[Path] = (),
) -> ExportedModel:
    """Export a run's network to ONNX bytes, verified against PyTorch, with its metadata."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be {MIN_OPSET} or later, got {opset}")
    run = Path(run)
    model, config = run_folder.load_model(run)
    data = config["data"]
    try:
        classes, mean, std = list(data["classes"]), data["mean"], data["std"]
        input_size = tuple(data["input_size"])
    except KeyError as exc:
        raise ValueError(f"{run / run_folder.CONFIG}: data.{exc.args[0]} is missing") from None
    standardization = data.get("standardize", "dataset")
    per_image = standardization == "per-image"
    unfolded = export_onnx(ImageClassifier(model, mean, std, per_image), input_size, opset)
    graph = unfolded
    if fold:
        folded = ImageClassifier(fold_model(model), mean, std, per_image)
        graph = export_onnx(folded, input_size, opset)
    check = np.concatenate(
        [random_images(RANDOM_IMAGES, input_size), _real_images(images, input_size)]
    )
    figures = verify(graph.SerializeToString(), model, mean, std, check, per_image=per_image)

    metrics = run_folder.read_metrics(run)
    test_acc = metrics[-1].get("test_acc") if metrics else None
    arch = config["model"]
    result = ExportedModel(
        model_bytes=b"",
        folded=fold,
        ops_before=op_counts(unfolded),
        ops_after=op_counts(graph),
        parameters=parameter_count(graph),
        flops_per_image=flops_per_image(graph),
        verification=figures,
    )
    result.metadata = {
        "classes": json.dumps(classes),
        "variant": str(arch["variant"]),
        "depth": str(arch["depth"]),
        "width": str(arch["width"]),
        "folded": "true" if fold else "false",
        "test_accuracy": "" if test_acc is None else f"{test_acc:.6f}",
        "dataset": str(data.get("dataset", "")),
        "input_size": json.dumps(list(input_size)),
        "mean": json.dumps(mean),
        "std": json.dumps(std),
        "standardize": standardization,
        "source_run": run.resolve().name,
        "weights_sha256": file_sha256(run / run_folder.MODEL),
        "skipfold_version": __version__,
        "exporter": f"torch {torch.__version__}, onnx {onnx.__version__}",
        "parameters": str(result.parameters),
        "flops_per_image": str(result.flops_per_image),
        "op_counts": json.dumps(result.ops_after),
        "op_counts_unfolded": json.dumps(result.ops_before),
        "verification": json.dumps(figures),
    }
    onnx.helper.set_model_props(graph, result.metadata)
    graph.producer_name, graph.producer_version = "skipfold", __version__
    result.model_bytes = graph.SerializeToString(deterministic=True)
    return result


def export_run(
    run: Path,
    repo: Path,
    *,
    name: str | None = None,
    fold: bool = True,
    opset: int = MIN_OPSET,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    images: Sequence[Path] = (),
) -> tuple[ExportedModel, int, Path]:
    """Build and verify, then add the model to `repo` as the next version of `name`.

    The default name is the run folder's, with "-unfolded" appended for an unfolded export.
    Nothing is written to the repository unless verification passed.
    """
    run = Path(run)
    if name is None:
        name = run.resolve().name + ("" if fold else "-unfolded")
    repository.check_name(name)
    exported = build(run, fold=fold, opset=opset, images=images)
    config = run_folder.read_config(run)["data"]
    version, path = repository.publish(
        Path(repo),
        name,
        exported.model_bytes,
        classes=config["classes"],
        input_size=config["input_size"],
        max_batch_size=max_batch_size,
    )
    return exported, version, path
