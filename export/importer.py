"""`skipfold import`: an image classifier trained elsewhere, as ONNX, into the repository.

Read and checked before any work (`onnx_source`), put behind skipfold's uint8 interface with
its standardization inside (`preprocessing_graph`), every BatchNormalization folded where that
is exact (`graph_fold`), then the folded graph verified against the unfolded one in ONNX Runtime
on random and given images; nothing is written unless every check passed. No torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from skipfold import __version__
from skipfold.common.io import file_sha256
from skipfold.export.folding import fold_graph
from skipfold.export.graph_stats import flops_per_image, op_counts, parameter_count
from skipfold.export.import_options import ImportOptions
from skipfold.export.import_precision import (
    CalibrationImages,
    calibration_images,
    fp16_import,
    int8_import,
)
from skipfold.export.onnx_source import (
    ImageInput,
    SourceError,
    check_runs,
    image_input,
    load_source,
    logits_output,
)
from skipfold.export.options import PrecisionOptions
from skipfold.export.preprocessing_graph import pixel_matrix, wrap
from skipfold.export.verify import (
    MAX_ABS_LOGIT_DIFF,
    RANDOM_IMAGES,
    VerificationError,
    image_files,
    onnx_outputs,
    random_images,
)
from skipfold.formats.model_card import (
    IMPORTED,
    FoldedBatchNorm,
    ImportedFrom,
    ModelCard,
    Verification,
)
from skipfold.formats.model_repository import ModelRepository

DEFAULT_PRECISION = PrecisionOptions()


@dataclass(frozen=True)
class ImportedModel:
    model_bytes: bytes
    card: ModelCard
    mul_add_folded: int = 0  # per-channel Mul/Add after a Conv (tf2onnx's BN form) folded
    fixed_batch: bool = False  # the graph takes exactly one image per call


@dataclass(frozen=True)
class _Plan:
    """What was read and decided before the work: checked in full before anything runs."""

    path: Path
    source: onnx.ModelProto
    source_opset: int  # the file's own, before any conversion
    image: ImageInput
    output_rank: int  # 2, or 4 for [N, classes, 1, 1]
    calibration: CalibrationImages | None  # int8, fp16
    verify_images: np.ndarray  # --verify-images, decoded as the server decodes them
    name: str
    size: tuple[int, int]
    classes: list[str]
    max_batch_size: int


def _plan(
    path: Path,
    options: ImportOptions,
    classes: Sequence[str] | None,
    images: Sequence[Path] = (),
) -> _Plan:
    model, opset = load_source(path, options.opset)
    image = image_input(model, path)
    if image.batch not in (None, 1):
        raise SourceError(f"{path}: its batch is fixed at {image.batch}; only 1 or dynamic serve")
    size = (image.height, image.width)
    if options.center_crop is not None:
        crop = (options.center_crop, options.center_crop)
        if any(fixed is not None and fixed != options.center_crop for fixed in size):
            fixed = "x".join("?" if d is None else str(d) for d in size)
            raise SourceError(
                f"--center-crop {options.center_crop} contradicts the graph's input of {fixed}"
            )
        size = crop
    if None in size:
        raise SourceError(
            f"{path}: its input's height and width are dynamic: give --center-crop N (the "
            "size it was trained at)"
        )
    if image.elem_type == onnx.TensorProto.UINT8 and (
        options.mean is not None
        or options.std is not None
        or options.channel_order != "rgb"
        or image.channels != 3
    ):
        raise SourceError(
            f"{path}: its input takes uint8 pixels as they are (RGB), so it standardizes them "
            "itself: --mean, --std and --channel-order do not apply, and it needs 3 channels"
        )
    options.standardization(image.channels)  # a contradiction is refused before any work
    count, rank = check_runs(model, image, size, path)
    classes = list(classes) if classes is not None else [str(i) for i in range(count)]
    if len(classes) != count:
        raise SourceError(f"--classes names {len(classes)} classes; the graph gives {count}")
    # a graph of a fixed batch of one has no batch dimension Triton can batch: max_batch_size 0
    max_batch_size = options.max_batch_size if image.batch is None else 0
    resize = options.resize_for(min(size))
    calibration = None
    if options.precision != "fp32":
        calibration = calibration_images(options.calibration_dir, classes, size, resize)
    verify_images = image_files(images, size, resize)
    name = options.name or path.stem + (
        "" if options.precision == "fp32" else f"-{options.precision}"
    )
    return _Plan(
        path, model, opset, image, rank, calibration, verify_images, name, size, classes,
        max_batch_size,
    )  # fmt: skip


def _outputs(model_bytes: bytes, images: np.ndarray, batch: int) -> tuple[np.ndarray, ...]:
    """(logits, probabilities) in ONNX Runtime, no graph optimizations, `batch` at a time."""
    parts = [onnx_outputs(model_bytes, images[i : i + batch]) for i in range(0, len(images), batch)]
    return tuple(np.concatenate([p[k] for p in parts]) for k in (0, 1))


def _verify(unfolded: bytes, folded: bytes, images: np.ndarray, batch: int) -> Verification:
    """The folded graph against the unfolded one (ONNX Runtime, no graph optimizations). The
    tolerance is skipfold export's, relative to the logits' own scale (1 at least)."""
    want, want_probabilities = _outputs(unfolded, images, batch)
    got, probabilities = _outputs(folded, images, batch)
    want64 = want.astype(np.float64)
    tolerance = MAX_ABS_LOGIT_DIFF * max(1.0, float(np.abs(want64).max()))
    diff = float(np.abs(got - want64).max())
    same = got.argmax(1) == want.argmax(1)
    if not np.isfinite(diff) or diff > tolerance or not same.all():
        raise VerificationError(
            f"the folded graph disagrees with the unfolded one on {len(images)} images: max |logit "
            f"difference| {diff:.3g} (tolerance {tolerance:.3g}), top-1 agreement "
            f"{100 * same.mean():.1f}%; nothing written"
        )
    return Verification(
        images=len(images),
        max_abs_logit_diff=diff,
        max_abs_probability_diff=float(np.abs(probabilities - want_probabilities).max()),
        top1_agreement=float(same.mean()),
        tolerance=tolerance,
    )


def build(
    path: Path,
    options: ImportOptions,
    classes: Sequence[str] | None = None,
    images: Sequence[Path] = (),
) -> ImportedModel:
    """The imported, folded and verified graph with its card (nothing written)."""
    return _build(_plan(path, options, classes, images), options)


def _build(
    plan: _Plan, options: ImportOptions, precision: PrecisionOptions = DEFAULT_PRECISION
) -> ImportedModel:
    path, source, image = plan.path, plan.source, plan.image
    logits, ends_in_softmax = logits_output(source, path, plan.output_rank)
    mean, std = options.standardization(image.channels)
    is_float = image.elem_type != onnx.TensorProto.UINT8
    matrix = pixel_matrix(image.channels, options.channel_order, mean, std) if is_float else None
    unfolded = wrap(source, image, plan.size, logits, ends_in_softmax, matrix, plan.output_rank)
    folding = fold_graph(unfolded, allow_residue=options.fold_all)
    folded, report = folding.model, folding.report
    onnx.checker.check_model(folded, full_check=True)
    resize = options.resize_for(min(plan.size))
    check = np.concatenate([random_images(RANDOM_IMAGES, plan.size), plan.verify_images])
    batch = 64 if image.batch is None else 1
    verification = _verify(unfolded.SerializeToString(), folded.SerializeToString(), check, batch)
    reduced: dict = {}
    if options.precision == "int8":
        folded, reduced = int8_import(folded, plan.calibration, precision, batch)
    elif options.precision == "fp16":
        folded, reduced = fp16_import(folded, plan.calibration, check, precision, batch)
    if not is_float:
        mean, std = [0.0] * 3, [1 / 255] * 3
    card = ModelCard(
        classes=plan.classes,
        input_size=plan.size,
        variant=IMPORTED,
        architecture="",
        activation="",
        folded=True,
        mean=mean,
        std=std,
        source_run=path.name,
        weights_sha256=file_sha256(path),
        skipfold_version=__version__,
        exporter=f"skipfold import, onnx {onnx.__version__}",
        parameters=parameter_count(folded),
        flops_per_image=flops_per_image(folded),
        op_counts=op_counts(folded),
        op_counts_unfolded=op_counts(unfolded),
        verification=verification,
        resize_shorter=resize,
        imported_from=ImportedFrom(
            file=path.name,
            sha256=file_sha256(path),
            producer=f"{source.producer_name} {source.producer_version}".strip() or "unknown",
            opset=plan.source_opset,
            input_type=image.type_name,
            input_layout=image.layout,
            channels=image.channels,
            channel_order=options.channel_order,
            outputs="probabilities" if ends_in_softmax else "logits",
        ),
        fold_report=[FoldedBatchNorm(**vars(entry)) for entry in report],
        precision=options.precision,
        **reduced,
    )
    onnx.helper.set_model_props(folded, card.to_metadata())
    folded.producer_name, folded.producer_version = "skipfold", __version__
    model_bytes = folded.SerializeToString(deterministic=True)
    return ImportedModel(model_bytes, card, folding.mul_add_folded, image.batch is not None)


def import_model(
    path: Path,
    repo: Path,
    options: ImportOptions,
    classes: Sequence[str] | None = None,
    images: Sequence[Path] = (),
    precision: PrecisionOptions = DEFAULT_PRECISION,
) -> tuple[ImportedModel, int, Path]:
    """Check, build and verify, then add the model to `repo` as the next version of its name.
    A name already taken by a model of another signature is refused before the work."""
    plan = _plan(path, options, classes, images)
    repository = ModelRepository(repo)
    publishing = {
        "classes": plan.classes,
        "input_size": plan.size,
        "max_batch_size": plan.max_batch_size,
        "parameters": {} if options.precision == "fp32" else {"precision": options.precision},
    }
    repository.check_publishable(plan.name, **publishing)
    imported = _build(plan, options, precision)
    version, written = repository.publish(plan.name, imported.model_bytes, **publishing)
    return imported, version, written
