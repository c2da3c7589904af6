"""Questions the graph folds ask of one ONNX node: its attributes, its padding, and whether it
is the plain form of an op that a fold may rewrite."""

from __future__ import annotations

from typing import Any

import onnx
from onnx import helper


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
