"""Proof on every export: the ONNX graph computes what the trained PyTorch model computes.

The reference is the run's own eval-mode network with BN, fed by training's own
standardization; the candidate is the exported graph in ONNX Runtime with every graph
optimization disabled (so ORT cannot hide a folding mistake by fixing the graph itself).
A reduced precision is then held to the float32 graph's test accuracy: int8 graphs in ONNX
Runtime, fp16 networks in PyTorch's float16 arithmetic (`classifier_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skipfold.common.images import decode_image
from skipfold.formats.model_config import INPUT_NAME

if TYPE_CHECKING:
    import torch

MAX_ABS_LOGIT_DIFF = 1e-4
RANDOM_IMAGES = 64
_CHUNK = 64


class VerificationError(ValueError):
    """The exported graph disagrees with the PyTorch model."""


def image_files(
    paths: Sequence[Path], size: Sequence[int], resize_shorter: int | None = None
) -> np.ndarray:
    """Image files decoded as the server decodes them: uint8 [N, H, W, 3]."""
    images = []
    for path in paths:
        try:
            images.append(
                decode_image(Path(path).read_bytes(), size, resize_shorter=resize_shorter)
            )
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return np.stack(images) if images else np.zeros((0, *size, 3), np.uint8)


def random_images(count: int, input_size: Sequence[int], seed: int = 0) -> np.ndarray:
    height, width = input_size
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def reference_logits(
    model: torch.nn.Module,
    images: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    per_image: bool = False,
) -> np.ndarray:
    """The PyTorch eval model on uint8 NHWC images, preprocessed exactly as in training."""
    import torch

    from skipfold.training.augment import standardize

    mean_t, std_t = torch.tensor(mean), torch.tensor(std)
    model = model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), _CHUNK):
            batch = torch.from_numpy(images[start : start + _CHUNK]).permute(0, 3, 1, 2)
            chunks.append(model(standardize(batch, mean_t, std_t, per_image)).double().numpy())
    return np.concatenate(chunks)


def onnx_outputs(model_bytes: bytes, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, probabilities) from ONNX Runtime on the CPU, no graph optimizations, 1 thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1  # one thread: the same figures on every export
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    logits, probabilities = [], []
    for start in range(0, len(images), _CHUNK):
        out = session.run(None, {INPUT_NAME: images[start : start + _CHUNK]})
        logits.append(out[0])
        probabilities.append(out[1])
    return np.concatenate(logits), np.concatenate(probabilities)


def verify(
    model_bytes: bytes,
    model: torch.nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    images: np.ndarray,
    *,
    per_image: bool = False,
    tolerance: float = MAX_ABS_LOGIT_DIFF,
) -> dict[str, Any]:
    """Compare on `images`; raise VerificationError past `tolerance` or on any top-1 change."""
    expected = reference_logits(model, images, mean, std, per_image)
    logits, probabilities = onnx_outputs(model_bytes, images)
    diff = float(np.abs(logits.astype(np.float64) - expected).max())
    same_top1 = logits.argmax(1) == expected.argmax(1)
    softmax = np.exp(expected - expected.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    figures = {
        "images": len(images),
        "max_abs_logit_diff": diff,
        "max_abs_probability_diff": float(np.abs(probabilities - softmax).max()),
        "top1_agreement": float(same_top1.mean()),
        "tolerance": tolerance,
    }
    if not np.isfinite(diff) or diff > tolerance or not same_top1.all():
        raise VerificationError(
            f"the ONNX graph disagrees with the PyTorch model on {len(images)} images: "
            f"max |logit difference| {diff:.3g} (tolerance {tolerance:g}), "
            f"top-1 agreement {100 * same_top1.mean():.1f}%"
        )
    return figures


def classifier_logits(classifier: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """An `ImageClassifier`'s logits on uint8 NHWC images, computed by PyTorch on the CPU in the
    classifier's own dtype. For fp16 this is the check that counts: PyTorch's float16 kernels
    round and overflow every activation as float16, as CUDA's do, while ONNX Runtime's CPU
    provider widens chains of float16 ops to float32 and would hide an overflow."""
    import torch

    classifier = classifier.eval()
    with torch.no_grad():
        return np.concatenate(
            [
                classifier(torch.from_numpy(images[start : start + 256]))[0].numpy()
                for start in range(0, len(images), 256)
            ]
        )


def check_finite(logits: np.ndarray, precision: str) -> None:
    """VerificationError when a reduced-precision network gives a NaN or infinite output: a
    weight or an activation past the format's range (float16: 65,504)."""
    bad = ~np.isfinite(logits).all(1)
    if bad.any():
        raise VerificationError(
            f"the {precision} network gives NaN or infinite outputs on {int(bad.sum())} of "
            f"{len(logits):,} images: its values exceed {precision}'s range; export fp32 or int8"
        )


class AccuracyDropError(ValueError):
    """A reduced-precision graph loses more test accuracy than allowed."""


def top1(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """Predicted classes from ONNX Runtime as it serves (every graph optimization, all cores)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return np.concatenate(
        [
            session.run(None, {INPUT_NAME: images[start : start + 256]})[0].argmax(1)
            for start in range(0, len(images), 256)
        ]
    )


def check_accuracy_drop(
    reference_bytes: bytes,
    candidate_bytes: bytes,
    images: np.ndarray,
    labels: np.ndarray,
    max_drop_points: float,
) -> dict[str, Any]:
    """Test accuracy of both graphs in ONNX Runtime and their top-1 agreement on labelled
    `images`; AccuracyDropError when the candidate is more than `max_drop_points` below."""
    candidate = top1(candidate_bytes, images)
    return accuracy_drop(top1(reference_bytes, images), candidate, labels, max_drop_points)


def accuracy_drop(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, max_drop_points: float
) -> dict[str, Any]:
    """The figures of two sets of predicted classes against `labels`; AccuracyDropError when
    the candidate's accuracy is more than `max_drop_points` below the reference's."""
    figures = {
        "images": len(labels),
        "reference_accuracy": float((reference == labels).mean()),
        "accuracy": float((candidate == labels).mean()),
        "top1_agreement": float((candidate == reference).mean()),
        "max_drop_points": max_drop_points,
    }
    drop = 100 * (figures["reference_accuracy"] - figures["accuracy"])
    if drop > max_drop_points:
        raise AccuracyDropError(
            f"accuracy drop {drop:.2f} points on {len(labels):,} test images "
            f"({100 * figures['reference_accuracy']:.2f}% -> {100 * figures['accuracy']:.2f}%, "
            f"top-1 agreement {100 * figures['top1_agreement']:.1f}%) exceeds "
            f"--max-accuracy-drop {max_drop_points:g}; nothing written"
        )
    return figures
