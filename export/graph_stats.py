"""What a graph holds and costs, read from the ONNX graph alone (no torch): the model card's
op counts, parameters and FLOPs, for exported and imported models alike."""

from __future__ import annotations

import collections

import numpy as np
import onnx


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes by op type, most frequent first."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def parameter_count(model: onnx.ModelProto) -> int:
    """Elements of every initializer (weights, biases, BN statistics, preprocessing constants)."""
    return int(sum(np.prod(init.dims, dtype=np.int64) for init in model.graph.initializer))


def flops_per_image(model: onnx.ModelProto) -> int:
    """2 x the multiply-adds of every Conv, Gemm and MatMul for one image (the usual convention).

    Element-wise ops, pooling and softmax are left out: they are a rounding error here.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            weight = shapes[node.input[1]]  # [C_out, C_in / groups, kh, kw]
            total += 2 * int(np.prod(out[1:])) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            out = shapes[node.output[0]]
            weight = shapes[node.input[1]]  # [K, N], or [N, K] for Gemm with transB
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            inner = weight[-1] if trans_b else weight[-2]
            total += 2 * int(np.prod(out[1:])) * int(inner)
    return total
