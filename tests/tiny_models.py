"""Small image classifiers built with onnx.helper, no torch: what the serving tests serve.

Each graph has the interface skipfold export writes (uint8 images [N, H, W, 3] in; float32
logits and probabilities [N, classes] out): the mean colour of each quarter of the image through
one linear layer. Its card describes it as one of the demo's models, so that code reading cards
has something to read; it is still a linear model, so latency figures from it mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from skipfold import __version__
from skipfold.formats.model_card import ModelCard, Verification
from skipfold.formats.model_config import INPUT_NAME
from skipfold.formats.model_repository import ModelRepository

CLASSES = [
    "circle", "ring", "square", "frame", "diamond",
    "triangle", "plus", "cross", "star", "crescent",
]  # fmt: skip
SIZE = (32, 32)


def tiny_classifier(seed: int, classes: int = 10, size: tuple[int, int] = SIZE) -> onnx.ModelProto:
    """uint8 [N, H, W, 3] -> 2x2 average pool of colours (12 features) -> linear -> softmax."""
    rng = np.random.default_rng(seed)
    height, width = size
    weight = rng.normal(0, 0.05, (12, classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, classes).astype(np.float32)
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "AveragePool",
            ["nchw"],
            ["pooled"],
            kernel_shape=[height // 2, width // 2],
            strides=[height // 2, width // 2],
        ),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "weight", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", *size, 3])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes]),
        ],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def card(variant: str, folded: bool = True, classes: list[str] = CLASSES) -> ModelCard:
    return ModelCard(
        classes=classes,
        input_size=SIZE,
        variant=variant,
        depth=10,
        width=1,
        folded=folded,
        dataset="shapes",
        standardize="per-image",
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        test_accuracy=0.5,
        source_run=f"tiny-{variant}",
        skipfold_version=__version__,
        exporter="onnx.helper (tests/tiny_models.py)",
        parameters=12 * len(classes) + len(classes),
        flops_per_image=2 * 12 * len(classes),
        verification=Verification(
            images=0,
            max_abs_logit_diff=0.0,
            max_abs_probability_diff=0.0,
            top1_agreement=1.0,
            tolerance=1e-4,
        ),
    )


def model_bytes(seed: int, model_card: ModelCard | None) -> bytes:
    model = tiny_classifier(seed, len(model_card.classes) if model_card else 10)
    if model_card is not None:
        helper.set_model_props(model, model_card.to_metadata())
    return model.SerializeToString()


def tiny_repository(root: Path) -> Path:
    """bn (versions 1 and 2), bn-unfolded, skipinit and `plain` (no card: labels.txt only)."""
    repository = ModelRepository(root)
    publish = {"classes": CLASSES, "input_size": SIZE, "max_batch_size": 64}
    repository.publish("bn", model_bytes(1, card("bn")), **publish)
    repository.publish("bn", model_bytes(2, card("bn")), **publish)
    repository.publish("bn-unfolded", model_bytes(2, card("bn", folded=False)), **publish)
    repository.publish("skipinit", model_bytes(3, card("skipinit")), **publish)
    repository.publish("plain", model_bytes(4, None), **publish)
    return root
