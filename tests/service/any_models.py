"""ONNX models that are not image classifiers, written here with onnx.helper (no skipfold code),
placed in a repository by hand as Triton users do: a float NCHW network, a model with two inputs
of different types and two outputs, and one without a batch dimension in float16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NCHW_CONFIG = """name: "nchw"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "pixels" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 16, 16 ] } ]
output [ { name: "scores" data_type: TYPE_FP32 dims: [ 5 ] } ]
"""


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def nchw(seed: int = 0) -> onnx.ModelProto:
    """float [N, 3, 16, 16] -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> [N, 5]."""
    rng = np.random.default_rng(seed)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 0.5, (6, 5)).astype(np.float32), "fc"),
        numpy_helper.from_array(rng.normal(0, 0.1, 5).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixels", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fc_b"], ["scores"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 5])],
        weights,
    )


def two_inputs(seed: int = 1) -> onnx.ModelProto:
    """features float [N, 4] and offset int64 [N, 1] -> y = features @ W + offset (float [N, 3])
    and positive = y > 0 (bool [N, 3])."""
    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.normal(0, 1, (4, 3)).astype(np.float32), "W")]
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["m"]),
        helper.make_node("Cast", ["offset"], ["o"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["m", "o"], ["y"]),
        helper.make_node("Greater", ["y", "zero"], ["positive"]),
    ]
    weights.append(numpy_helper.from_array(np.zeros(1, np.float32), "zero"))
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("offset", TensorProto.INT64, ["N", 1]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("positive", TensorProto.BOOL, ["N", 3]),
        ],
        weights,
    )


def fixed_fp16() -> onnx.ModelProto:
    """float16 [2, 3] -> Relu -> [2, 3]: no batch dimension (Triton's max_batch_size 0)."""
    nodes = [helper.make_node("Relu", ["h"], ["relu"])]
    return _model(
        nodes,
        [helper.make_tensor_value_info("h", TensorProto.FLOAT16, [2, 3])],
        [helper.make_tensor_value_info("relu", TensorProto.FLOAT16, [2, 3])],
        [],
    )


def place(repo: Path, name: str, model: onnx.ModelProto, config: str | None = None) -> Path:
    """`repo/name/1/model.onnx` and, if given, `repo/name/config.pbtxt`, as written by hand."""
    path = repo / name / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))
    if config is not None:
        (repo / name / "config.pbtxt").write_text(config)
    return path


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs by onnx's own reference evaluator (not ONNX Runtime)."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feeds)
