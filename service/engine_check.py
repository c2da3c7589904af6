"""A model compiled by another engine or in a reduced precision, checked against ONNX Runtime
running the same file as exported, before it serves a request.

The check catches an engine or a precision that computes something else (a wrong layout, an
overflow, a mis-fused kernel), which moves most answers. It is not an accuracy measurement: the
server has no test images, so it runs on images it makes (half uniform noise, half smooth colour
fields), where a network is unsure and rounding moves the odd answer. On the demo models in bf16
the median class-probability difference was at most 0.005 and at most 2 of 64 top-1 answers
moved, while on the 2,000 test images accuracy and top-1 answers did not change (an unnormalized
SkipInit network is the most sensitive: its activations grow large on such images). Accuracy
under each engine and precision is measured on test sets in docs/results.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from skipfold.formats.model_config import RepositoryError

CHECK_IMAGES = 64
Runner = Callable[[np.ndarray], list[np.ndarray]]


class EngineCheckError(RepositoryError):
    """The engine's answers differ from ONNX Runtime's by more than the tolerance."""


@dataclass(frozen=True)
class EngineCheck:
    images: int
    top1_agreement: float
    median_abs_probability_diff: float  # per image: the largest class difference
    max_abs_probability_diff: float
    tolerance: float  # on the median
    min_agreement: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def check_images(size: tuple[int, int], count: int = CHECK_IMAGES, seed: int = 0) -> np.ndarray:
    """uint8 [count, H, W, 3]: the first half noise, the rest 4x4 noise blown up smoothly."""
    rng = np.random.default_rng(seed)
    height, width = size
    noise = rng.integers(0, 256, (count - count // 2, height, width, 3), dtype=np.uint8)
    smooth = [
        np.asarray(
            Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for _ in range(count // 2)
    ]
    return np.concatenate([noise, np.stack(smooth)]) if smooth else noise


def check_engine(
    runner: Runner,
    reference: Runner,
    probabilities: Callable[[list[np.ndarray]], np.ndarray],
    size: tuple[int, int],
    limits: tuple[float, float],
    what: str,
) -> EngineCheck:
    """Runs both on the check images one at a time (as served at batch 1), comparing the class
    `probabilities` of their outputs. `limits`: the
    largest median probability difference and the least top-1 agreement; EngineCheckError
    naming the measured figures past either."""
    tolerance, min_agreement = limits
    images = check_images(size)
    ours = np.concatenate([probabilities(runner(i[None])) for i in images]).astype(np.float64)
    theirs = np.concatenate([probabilities(reference(i[None])) for i in images]).astype(np.float64)
    per_image = np.abs(ours - theirs).max(axis=1)
    agreement = float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    check = EngineCheck(
        len(images),
        agreement,
        float(np.median(per_image)),
        float(per_image.max()),
        tolerance,
        min_agreement,
    )
    if check.median_abs_probability_diff > tolerance or agreement < min_agreement:
        raise EngineCheckError(
            f"{what}: on {len(images)} check images its top-1 answers agree with ONNX "
            f"Runtime's on the same file for {100 * agreement:.1f}% (at least "
            f"{100 * min_agreement:g}% needed) and its class probabilities differ by "
            f"{check.median_abs_probability_diff:.3g} at the median (at most {tolerance:g}); "
            "not served. Serve it with --inference-precision fp32 or --engine onnxruntime"
        )
    return check
