"""Where a pre-activation fold's offset goes (export/preact_fold.py): into the bias of the Conv
that makes the stream (directly, through the residual Add, or through the pooling of a
DenseNet's transition), and back out of every other reader downstream, exactly: a BN in its
mean, an unpadded Conv or a plain Gemm in its bias; Adds, pooling that keeps a constant
constant, and a channel Concat pass it on.
"""

from __future__ import annotations

import numpy as np
import onnx

from skipfold.export.graph_fold import _Graph, _label, _weights
from skipfold.export.graph_nodes import attribute, padded, plain_gemm, spatial_mean

PASS_OFFSET = {"MaxPool", "GlobalAveragePool", "GlobalMaxPool", "Identity"}
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool")


def channels_kept(g: _Graph, node: onnx.NodeProto) -> bool:
    """A Flatten whose input is globally pooled ([N, C, 1, 1] -> [N, C]) or another op that
    keeps each channel where it was."""
    if node.op_type != "Flatten":
        return True
    producer = g.producer(node.input[0])
    return producer is not None and (producer.op_type in GLOBAL_POOLS or spatial_mean(g, producer))


def planned_bias(g: _Graph, node: onnx.NodeProto, channels: int, edits: dict, attach: dict) -> str:
    """The name of `node`'s bias in `edits` (zeros planned where it has none, a copy where it
    shares one; attached to the node only when the fold is written)."""
    name = f"{node.output[0]}_folded_bias"
    if len(node.input) > 2 and node.input[2]:
        if len(g.readers(node.input[2])) == 1:
            edits.setdefault(node.input[2], g.array(node.input[2]))
            return node.input[2]
        edits.setdefault(name, g.array(node.input[2]))  # a shared constant: its own copy
    else:
        edits.setdefault(name, np.zeros(channels))
    attach[name] = node
    return name


def is_2d_conv(g: _Graph, conv: onnx.NodeProto) -> bool:
    """Constant 4-D weights only this Conv reads: its output is NCHW."""
    weights = _weights(g, conv)
    return weights is not None and weights.ndim == 4


def passes_offset(node: onnx.NodeProto) -> bool:
    """Whether `node` turns x + c into f(x) + c, channel by channel (max pooling, padded with
    -inf; average pooling without zero padding)."""
    return node.op_type in ("MaxPool", "Identity") or (
        node.op_type == "AveragePool" and not padded(node)
    )


def offset_source(g: _Graph, x: str) -> onnx.NodeProto | None:
    """The Conv whose bias can add an offset to x: x's producer, or a Conv whose output only
    the Add producing x reads, or one whose output only the pooling that makes x reads (a
    DenseNet's transition)."""
    producer = g.producer(x)
    while (
        producer is not None
        and passes_offset(producer)
        and (inner := g.producer(producer.input[0])) is not None
        and g.only_reader(producer.input[0], producer)
    ):
        producer = inner
    if producer is None:
        return None
    if producer.op_type == "Conv" and is_2d_conv(g, producer):
        return producer
    if producer.op_type == "Add":
        for addend in producer.input:
            conv = g.producer(addend)
            if (
                conv is not None
                and conv.op_type == "Conv"
                and is_2d_conv(g, conv)
                and g.only_reader(addend, producer)
            ):
                return conv
    return None


def scale_input_channels(g: _Graph, node: onnx.NodeProto, scale: np.ndarray, edits: dict) -> None:
    """A Conv's or a plain Gemm's weights times `scale` per input channel (planned in `edits`):
    what reads x then computes as if it read scale * x."""
    weights = edits.get(node.input[1], g.array(node.input[1]))
    if node.op_type == "Gemm":
        axis = 0 if attribute(node, "transB", 0) == 0 else 1
        shape = [1, 1]
        shape[axis] = -1
        edits[node.input[1]] = weights * scale.reshape(shape)
        return
    group = attribute(node, "group", 1)
    per_group, outputs = weights.shape[1], weights.shape[0] // group
    w = weights.reshape(group, outputs, per_group, -1) * scale.reshape(group, 1, per_group, 1)
    edits[node.input[1]] = w.reshape(weights.shape)


def absorb_in_bias(
    g: _Graph, node: onnx.NodeProto, shift: np.ndarray, edits: dict, attach: dict
) -> str | None:
    """An unpadded Conv or a plain Gemm takes an input offset back in its bias; why not."""
    op = node.op_type
    if op == "Gemm" and not plain_gemm(node):
        return f"the offset would reach {_label(node)}, a Gemm with alpha, beta or transA"
    if op == "Conv" and padded(node):
        return f"the offset would reach {_label(node)}, which pads with zeros"
    weights = edits.get(node.input[1], g.array(node.input[1]))
    if op == "Gemm":
        taken = weights.T @ shift if attribute(node, "transB", 0) == 0 else weights @ shift
    else:
        group = attribute(node, "group", 1)
        per_group, outputs = weights.shape[1], weights.shape[0] // group
        w = weights.reshape(group, outputs, per_group, -1).sum(axis=3)
        taken = (w * shift.reshape(group, 1, per_group)).sum(axis=2).reshape(-1)
    name = planned_bias(g, node, len(taken), edits, attach)
    edits[name] = edits[name] - taken
    return None


def concatenated(
    g: _Graph, node: onnx.NodeProto, carried: list[np.ndarray | None]
) -> np.ndarray | str:
    """The offset a channel Concat's output carries: its inputs', zeros where they carry none;
    why not, where the axis is not the channels' or an input's channel count is unknown."""
    if attribute(node, "axis", 0) != 1:
        return f"the offset would reach {_label(node)}, which does not join channels"
    parts = []
    for name, offset in zip(node.input, carried, strict=True):
        channels = g.channels(name)
        if offset is None and channels is None:
            return f"the offset would reach {_label(node)}, whose inputs' channels are unknown"
        parts.append(np.zeros(channels) if offset is None else offset)
    return np.concatenate(parts)


def _in_mean(g: _Graph, bn: onnx.NodeProto, shift: np.ndarray, edits: dict) -> str | None:
    """A BN takes an input offset back in its mean; why not."""
    mean = edits.get(bn.input[3], g.array(bn.input[3]))
    if mean is None or len(g.readers(bn.input[3])) > 1 or list(bn.input).count(bn.input[3]) > 1:
        return f"{_label(bn)} has no mean of its own to take the offset"
    edits[bn.input[3]] = mean + shift
    return None


def _carried(
    g: _Graph, node: onnx.NodeProto, carried: list, edits: dict, attach: dict
) -> np.ndarray | str | None:
    """What `node`'s output carries of the offsets its inputs carry: an offset, None where the
    node takes it back (planned in `edits`), or why it can do neither."""
    op, shift = node.op_type, carried[0]
    if any(c is not None for c in carried[1:]) and op not in ("Add", "Concat"):
        return f"the offset would reach {_label(node)}'s parameters"
    if op == "Concat":  # a DenseNet's: the offset rides in its inputs' channels
        return concatenated(g, node, carried)
    if op == "Add":
        return np.sum([c for c in carried if c is not None], axis=0)
    if op == "BatchNormalization":
        return _in_mean(g, node, shift, edits)
    if (
        op in PASS_OFFSET
        or (op == "AveragePool" and not padded(node))
        or spatial_mean(g, node)
        or (op == "Flatten" and channels_kept(g, node))
    ):
        return shift
    if op in ("Conv", "Gemm") and _weights(g, node) is not None:
        return absorb_in_bias(g, node, shift, edits, attach)
    return f"the offset would reach {_label(node)}"


def propagate(
    g: _Graph, x: str, delta: np.ndarray, bn: onnx.NodeProto, edits: dict, attach: dict
) -> str | None:
    """Every reader downstream of x takes back the offset `delta` x now carries (planned in
    `edits`); why not, if one cannot."""
    offsets = {x: delta}
    for node in g.graph.node:
        reached = next((name for name in offsets if name in g.outputs), None)
        if reached is not None:
            return f"the offset would reach the graph's output {reached}"
        carried = [offsets.get(name) for name in node.input]
        if node is bn or all(c is None for c in carried):
            continue
        result = _carried(g, node, carried, edits, attach)
        if isinstance(result, str):
            return result
        if result is not None:
            offsets[node.output[0]] = result
    reached = next((name for name in offsets if name in g.outputs), None)
    return None if reached is None else f"the offset would reach the graph's output {reached}"
