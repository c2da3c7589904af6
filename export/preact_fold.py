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
- a negative s: the layers that make x negate that channel and x's other readers take the sign
  back (export/preact_signs.py); where they cannot, a Mul by -1 is left for it;
- s == 0: the channel is the constant relu(t): nothing where that is 0, else the biases of the
  sinks take it where it reaches them as that constant (unpadded); otherwise, and for an offset
  much larger than the stream's own scale (|running mean| + std: the stream would lose its
  precision), the channel's affine stays explicit, as a Mul and an Add before the ReLU.

Each fold's arithmetic in float64, rounded to float32 once when it is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from skipfold.export.graph_fold import (
    BatchNormReport,
    _drop_unused_constants,
    _Graph,
    _label,
    _statistics,
    _weights,
)
from skipfold.export.graph_nodes import attribute, padded, plain_gemm, spatial_mean
from skipfold.export.preact_offset import (
    absorb_in_bias,
    channels_kept,
    offset_source,
    planned_bias,
    propagate,
    scale_input_channels,
)
from skipfold.export.preact_signs import plan_signs

# An offset rides on the stream only while it is at most this many times the stream's own scale
# there (|running mean| + running std): the stream then loses at most ~4 bits.
MAX_STREAM_OFFSET_RATIO = 16.0
PASS_SCALE = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}


def _scale_sinks(g: _Graph, value: str) -> tuple[list[onnx.NodeProto], bool] | str:
    """The Convs and Gemms whose input channels carry `value`'s channels (through pooling and
    a Flatten after global pooling), and whether a constant channel reaches them as that
    constant (no padded Conv among them, no average pooling that counts padded zeros on the
    way); or why there are others."""
    sinks: list[onnx.NodeProto] = []
    constants_reach = True
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
                constants_reach &= not padded(reader)
            elif (
                reader.op_type in PASS_SCALE
                or spatial_mean(g, reader)
                or (reader.op_type == "Flatten" and channels_kept(g, reader))
            ):
                counts_padding = attribute(reader, "count_include_pad", 0) == 1
                constants_reach &= not (reader.op_type == "AveragePool" and counts_padding)
                pending.append(reader.output[0])
            else:
                return f"its ReLU's output feeds {reader.op_type}"
    return sinks, constants_reach


@dataclass(frozen=True)
class _Channels:
    """What each channel of a folded BN becomes: relu(s x + t) = input_scale * relu(sign * (x +
    offset) + explicit), with offset riding on the stream, and a constant channel's relu(t)
    in the sinks' biases."""

    offset: np.ndarray
    input_scale: np.ndarray
    sign: np.ndarray
    explicit: np.ndarray
    relu_t: np.ndarray

    @property
    def residue(self) -> int:
        return int(((self.sign != 1) | (self.explicit != 0)).sum())


def _channels(
    g: _Graph, bn: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray, constants_reach: bool
) -> _Channels:
    mean, var = g.array(bn.input[3]), g.array(bn.input[4])
    eps = attribute(bn, "epsilon", 1e-5)
    nonzero = scale != 0
    # a zero gamma's channel is the constant relu(t): nothing if that is 0, else the sinks'
    # biases take it where it reaches them as a constant
    constant = ~nonzero & ((shift <= 0) | constants_reach)
    abs_scale = np.where(nonzero, np.abs(scale), 1.0)
    offset = np.where(nonzero, shift / np.where(nonzero, scale, 1.0), 0.0)
    stream_scale = np.abs(mean) + np.sqrt(var + eps)
    on_stream = nonzero & (np.abs(offset) <= MAX_STREAM_OFFSET_RATIO * stream_scale)
    return _Channels(
        offset=np.where(on_stream, offset, 0.0),
        input_scale=np.where(constant, 0.0, abs_scale),
        sign=np.where(constant, 1.0, np.sign(scale)),
        explicit=np.where(on_stream | constant, 0.0, shift / abs_scale),
        relu_t=np.where(constant, np.maximum(shift, 0.0), 0.0),
    )


def _why_kept(c: _Channels, unsigned: str | None) -> str:
    tiny, negative = int((c.explicit != 0).sum()), int((c.sign < 0).sum())
    parts = []
    if tiny:
        parts.append(
            f"{tiny} of its channels have a zero or tiny gamma (relu(beta) > 0 reaching a padded "
            "Conv, or an offset beta/gamma that would swamp the stream)"
        )
    if negative:
        parts.append(f"{negative} a negative gamma, and x cannot be negated: {unsigned}")
    return (
        "; ".join(parts) + "; the fold would leave a Mul and an Add before the ReLU, which "
        "measured slower than the BN"
    )


def _write_residue(
    g: _Graph, bn: onnx.NodeProto, relu: onnx.NodeProto, c: _Channels, dtype: np.dtype
) -> None:
    """The ReLU reads x, times the signs, plus the explicit shifts (each only where needed)."""
    value = bn.input[0]
    for op, operand in (("Mul", c.sign), ("Add", c.explicit)):
        if (op == "Mul" and (operand == 1).all()) or (op == "Add" and (operand == 0).all()):
            continue
        constant = f"{bn.output[0]}_{op.lower()}"
        g.set_constant(constant, operand.reshape(-1, 1, 1), dtype)
        node = helper.make_node(op, [value, constant], [f"{constant}_out"])
        g.graph.node.insert(list(g.graph.node).index(relu), node)
        value = node.output[0]
    relu.input[0] = value


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
    found_sinks = _scale_sinks(g, relu.output[0])
    if isinstance(found_sinks, str):
        return found_sinks
    return _fold_into(g, bn, relu, (scale, shift), found_sinks, allow_residue)


def _fold_into(
    g: _Graph,
    bn: onnx.NodeProto,
    relu: onnx.NodeProto,
    statistics: tuple[np.ndarray, np.ndarray],
    found_sinks: tuple[list[onnx.NodeProto], bool],
    allow_residue: bool,
) -> str | None:
    """The fold of `bn` (y = scale x + shift) whose `relu` feeds the sinks; why not."""
    (scale, shift), (sinks, constants_reach) = statistics, found_sinks
    x = bn.input[0]
    source = offset_source(g, x)
    if source is None:
        return "nothing before it can carry its offset (no Conv makes its input)"
    edits: dict[str, np.ndarray] = {}
    attach: dict[str, onnx.NodeProto] = {}
    unsigned = None  # why x cannot be negated where gammas are negative
    if (scale < 0).any():
        unsigned = plan_signs(g, bn, np.where(scale < 0, -1.0, 1.0), edits, attach)
        if unsigned is None:
            scale = np.abs(scale)  # x's makers negate those channels, its readers undo it
        else:
            edits, attach = {}, {}
    c = _channels(g, bn, scale, shift, constants_reach)
    if c.residue and not allow_residue:
        return _why_kept(c, unsigned)
    name = planned_bias(g, source, _weights(g, source).shape[0], edits, attach)
    edits[name] = edits[name] + c.offset
    why = propagate(g, x, c.offset, bn, edits, attach)
    if why is not None:
        return why
    for sink in sinks:
        if c.relu_t.any():
            taken = absorb_in_bias(g, sink, -c.relu_t, edits, attach)  # adds W relu(t)
            assert taken is None, taken  # constants_reach: no padded sink
        scale_input_channels(g, sink, c.input_scale, edits)
    dtype = numpy_helper.to_array(g.constants[source.input[1]]).dtype
    for constant, node in attach.items():  # each its own bias: planned where it had none or
        if len(node.input) > 2:  # shared one (exporters share one constant of zeros)
            node.input[2] = constant
        else:
            node.input.append(constant)
    for constant, values in edits.items():  # each in its own type, a new one in the Conv's
        own = g.constants.get(constant)
        g.set_constant(constant, values, dtype if own is None else numpy_helper.to_array(own).dtype)
    _write_residue(g, bn, relu, c, dtype)
    g.graph.node.remove(bn)
    return None


def fold_preactivation(
    model: onnx.ModelProto, report: list[BatchNormReport], *, allow_residue: bool = False
) -> tuple[onnx.ModelProto, list[BatchNormReport]]:
    """`model` with every BN of `report` that was kept and reads into a ReLU folded where the
    result is exact (in place), and the report updated. Without `allow_residue`, only where
    nothing is left of the BN: a Mul by the signs and an Add for the explicit channels cost
    more than the BN they replace (a pre-activation ResNet-18 with such statistics: 11% slower
    at batch 1 under ONNX Runtime, 32% in int8, docs/import.md); `skipfold export` allows them,
    as every BN of its own networks must go (and `skipfold import --fold-all`)."""
    g = _Graph(model)
    by_label = {_label(n): n for n in g.graph.node if n.op_type == "BatchNormalization"}
    updated = []
    for entry in report:
        bn = by_label.get(entry.name)
        if entry.folded_into is not None or bn is None:
            updated.append(entry)
            continue
        residue = {f"{bn.output[0]}_{op}_out": op.capitalize() for op in ("mul", "add")}
        why = _fold_one(g, bn, allow_residue)
        if why is None:
            into = "the ReLU's readers (scale) and the stream's producer (offset)"
            left = [op for n in g.graph.node if (op := residue.get(n.output[0]))]
            if left:
                into += f", leaving {' and '.join(left)} before the ReLU"
            updated.append(BatchNormReport(entry.name, into))
        else:
            updated.append(BatchNormReport(entry.name, None, f"{entry.reason}; {why}"))
    _drop_unused_constants(g)
    return model, updated
