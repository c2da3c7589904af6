"""Pre-activation BatchNormalization folded over an ONNX graph: BN -> ReLU -> convolutions.

In eval mode a BN is y = s x + t per channel, and
for s != 0, relu(s x + t) = |s| relu(sign(s) (x + t / s)):

- |s| moves into the input channels of what reads the ReLU (Convs, padded or not: |s| * 0 = 0;
  through pooling, which is positively homogeneous, into a Gemm);
- the offset t / s is added to x itself by the layer that makes x: the bias of the Conv that
  produces it, of the Conv whose output the residual Add sums into it, or of the Conv whose
  output only the pooling that makes x reads. Every other reader of
  x then sees the offset too and takes it back exactly: a BN in its mean, an Add passes it on,
  pooling and a channel Concat pass it on (a DenseNet's: its BN after the Concat takes it in its
  mean), an unpadded Conv or a Gemm in its bias. If any reader cannot (a padded
  Conv, the graph's output, anything else), this BN is kept and the graph left as it was.
- a negative s leaves a Mul by -1 for its channels; s == 0 (the channel is the constant
  relu(t)) or an offset much larger than the stream's own scale (|running mean| + std: the
  stream would lose its precision) leave that channel's affine explicit, as an Add after it.

Each fold's arithmetic in float64, rounded to float32 once when it is written.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from skipfold.export.graph_fold import (
    BatchNormReport,
    _bias,
    _drop_unused_constants,
    _Graph,
    _label,
    _statistics,
    _weights,
)
from skipfold.export.graph_nodes import attribute, plain_gemm, spatial_mean
from skipfold.export.preact_offset import (
    channels_kept,
    offset_source,
    planned_bias,
    propagate,
)

# An offset rides on the stream only while it is at most this many times the stream's own scale
# there (|running mean| + running std): the stream then loses at most ~4 bits.
MAX_STREAM_OFFSET_RATIO = 16.0
PASS_SCALE = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}


def _scale_sinks(g: _Graph, value: str) -> list[onnx.NodeProto] | str:
    """The Convs and Gemms whose input channels carry `value`'s channels (through pooling and
    a Flatten after global pooling), or why there are others."""
    sinks: list[onnx.NodeProto] = []
    pending = [value]
    while pending:
        current = pending.pop()
        if current in g.outputs:
            return "its ReLU's output is a graph output"
        for reader in g.readers(current):
            if reader.input[0] != current:
                return f"its ReLU's output feeds {reader.op_type} as a weight"
            if reader.op_type in ("Conv", "Gemm") and _weights(g, reader) is not None:
                if reader.op_type == "Gemm" and not plain_gemm(reader):
                    return "its ReLU's output feeds a Gemm with alpha, beta or transA"
                sinks.append(reader)
            elif (
                reader.op_type in PASS_SCALE
                or spatial_mean(g, reader)
                or (reader.op_type == "Flatten" and channels_kept(g, reader))
            ):
                pending.append(reader.output[0])
            else:
                return f"its ReLU's output feeds {reader.op_type}"
    return sinks


def _scale_inputs(g: _Graph, node: onnx.NodeProto, scale: np.ndarray, edits: dict) -> None:
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


def _fold_one(g: _Graph, bn: onnx.NodeProto, allow_residue: bool) -> str | None:
    """Fold one BN -> ReLU -> ... in place; why not (the graph untouched) if it cannot."""
    found = _statistics(g, bn)
    if isinstance(found, str):
        return found
    scale, shift = found
    readers = g.readers(bn.output[0])
    if len(readers) != 1 or readers[0].op_type != "Relu" or bn.output[0] in g.outputs:
        return "not before a ReLU alone"
    relu = readers[0]
    sinks = _scale_sinks(g, relu.output[0])
    if isinstance(sinks, str):
        return sinks
    x = bn.input[0]
    source = offset_source(g, x)
    if source is None:
        return "nothing before it can carry its offset (no Conv makes its input)"
    mean, var = g.array(bn.input[3]), g.array(bn.input[4])
    eps = attribute(bn, "epsilon", 1e-5)
    nonzero = scale != 0
    safe = np.where(nonzero, scale, 1.0)
    offset = np.where(nonzero, shift / safe, 0.0)
    stream_scale = np.abs(mean) + np.sqrt(var + eps)
    on_stream = nonzero & (np.abs(offset) <= MAX_STREAM_OFFSET_RATIO * stream_scale)
    input_scale = np.where(nonzero, np.abs(scale), 1.0)
    sign = np.sign(scale)
    explicit = np.where(on_stream, 0.0, np.where(nonzero, shift / input_scale, shift))
    offset = np.where(on_stream, offset, 0.0)
    residue = int(((sign != 1) | (explicit != 0)).sum())
    if residue and not allow_residue:
        return (
            f"{residue} of its channels have a negative, zero or tiny gamma: the fold would "
            "leave a Mul and an Add before the ReLU, which measured slower than the BN"
        )
    edits: dict[str, np.ndarray] = {}
    attach: dict[str, onnx.NodeProto] = {}
    name = planned_bias(g, source, _weights(g, source).shape[0], edits, attach)
    edits[name] = edits[name] + offset
    why = propagate(g, x, offset, bn, edits, attach)
    if why is not None:
        return why
    for sink in sinks:
        _scale_inputs(g, sink, input_scale, edits)
    dtype = numpy_helper.to_array(g.constants[source.input[1]]).dtype
    for constant, node in attach.items():
        _bias(g, node, len(edits[constant]))  # attaches the new bias's name to the node
    for constant, values in edits.items():
        g.set_constant(constant, values, dtype)
    value = x
    for op, operand in (("Mul", sign), ("Add", explicit)):
        if (op == "Mul" and (operand == 1).all()) or (op == "Add" and (operand == 0).all()):
            continue
        constant = f"{bn.output[0]}_{op.lower()}"
        g.set_constant(constant, operand.reshape(-1, 1, 1), dtype)
        node = helper.make_node(op, [value, constant], [f"{constant}_out"])
        g.graph.node.insert(list(g.graph.node).index(relu), node)
        value = node.output[0]
    relu.input[0] = value
    g.graph.node.remove(bn)
    return None


def fold_preactivation(
    model: onnx.ModelProto, report: list[BatchNormReport], *, allow_residue: bool = False
) -> tuple[onnx.ModelProto, list[BatchNormReport]]:
    """`model` with every BN of `report` that was kept and reads into a ReLU folded where the
    result is exact (in place), and the report updated. Without `allow_residue`, only where
    nothing is left of the BN: a Mul by the signs and an Add for the explicit channels cost
    more than the BN they replace (a pre-activation ResNet-18 with such statistics: 10% slower
    at batch 1 under ONNX Runtime, docs/import.md); `skipfold export` allows them, as every BN
    of its own networks must go."""
    g = _Graph(model)
    by_label = {_label(n): n for n in g.graph.node if n.op_type == "BatchNormalization"}
    updated = []
    for entry in report:
        bn = by_label.get(entry.name)
        if entry.folded_into is not None or bn is None:
            updated.append(entry)
            continue
        why = _fold_one(g, bn, allow_residue)
        if why is None:
            into = "the ReLU's readers (scale) and the stream's producer (offset)"
            updated.append(BatchNormReport(entry.name, into))
        else:
            updated.append(BatchNormReport(entry.name, None, f"{entry.reason}; {why}"))
    _drop_unused_constants(g)
    return model, updated
