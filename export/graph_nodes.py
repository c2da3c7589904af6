"""Questions the graph folds ask of one ONNX node (its attributes, its padding, whether it is
the plain form of an op that a fold may rewrite) and of the graph (`_Graph`: who produces and
who reads each value, its constants, its inferred shapes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """A node's attribute value, or `default` where it has none."""
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def plain_gemm(node: onnx.NodeProto) -> bool:
    """A Gemm computing A W' + C (alpha 1, beta 1, A not transposed): what the folds assume."""
    return (
        attribute(node, "alpha", 1.0) == 1.0
        and attribute(node, "beta", 1.0) == 1.0
        and attribute(node, "transA", 0) == 0
    )


def padded(node: onnx.NodeProto) -> bool:
    """A Conv or pooling with padding (a padded zero is not a shifted zero)."""
    auto_pad = attribute(node, "auto_pad", b"NOTSET")
    return auto_pad not in (b"NOTSET", b"VALID") or any(attribute(node, "pads", []))


def spatial_mean(g: Any, node: onnx.NodeProto) -> bool:
    """A ReduceMean over height and width (global average pooling, as exporters write it)."""
    if node.op_type != "ReduceMean":
        return False
    axes = attribute(node, "axes", None)
    if axes is None and len(node.input) > 1 and g.array(node.input[1]) is not None:
        axes = g.array(node.input[1]).astype(int).tolist()
    return axes is not None and sorted(a % 4 for a in axes) == [2, 3]


class _Graph:
    """The graph's nodes, who produces and who reads each value, and its constants."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.constants = {t.name: t for t in self.graph.initializer}
        self.outputs = {o.name for o in self.graph.output}
        self._shapes: dict[str, list[int | None]] | None = None  # inferred when first asked

    def readers(self, value: str) -> list[onnx.NodeProto]:
        return [n for n in self.graph.node if value in n.input]

    def producer(self, value: str) -> onnx.NodeProto | None:
        return next((n for n in self.graph.node if value in n.output), None)

    def array(self, name: str) -> np.ndarray | None:
        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor).astype(np.float64)

    def shape(self, value: str) -> list[int | None] | None:
        """`value`'s dimensions as shape inference knows them (None: unknown)."""
        if self._shapes is None:
            inferred = onnx.shape_inference.infer_shapes(self.model).graph
            self._shapes = {}
            for info in [*inferred.value_info, *inferred.input, *inferred.output]:
                if info.type.tensor_type.HasField("shape"):
                    dims = info.type.tensor_type.shape.dim
                    known = [d.dim_value if d.HasField("dim_value") else None for d in dims]
                    self._shapes[info.name] = known
        return self._shapes.get(value)

    def channels(self, value: str) -> int | None:
        """The size of `value`'s second (channel) dimension where shape inference knows it."""
        shape = self.shape(value)
        return shape[1] if shape is not None and len(shape) > 1 else None

    def only_reader(self, value: str, node: onnx.NodeProto) -> bool:
        return value not in self.outputs and self.readers(value) == [node]

    def set_constant(self, name: str, values: np.ndarray, dtype: np.dtype) -> None:
        tensor = numpy_helper.from_array(values.astype(dtype), name)
        if name in self.constants:
            self.constants[name].CopyFrom(tensor)
            return
        self.graph.initializer.append(tensor)
        self.constants[name] = self.graph.initializer[-1]
        if self.model.ir_version < 4:  # then every initializer is also a graph input
            self.graph.input.append(
                helper.make_tensor_value_info(name, tensor.data_type, values.shape)
            )


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or node.output[0]}"
