"""BatchNormalization folded over an ONNX graph itself, exactly, with a report of every BN.

The first part of `skipfold import` (issue 33): networks trained elsewhere arrive as ONNX
graphs, not as skipfold modules, so the fold works on the graph. Arithmetic in float64, float32
once at the end. A BN is folded where the result is exact:

- after a Conv whose output only the BN reads: each output channel's filter and bias scaled,
  the shift added to the bias (any sign of gamma; grouped and depthwise convolutions too);
- before Convs without padding that are its only readers: each input channel's weights
  scaled, the shift's contribution added to the bias. With zero padding the shift would be
  wrong at the borders (a padded zero is not a shifted zero), so such a BN is kept.

Every other BN is kept and listed with the reason. Weights must be constants (initializers,
also in the old style where they are listed as graph inputs); a BN whose statistics are not
finite is refused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from skipfold.export.graph_nodes import _Graph, _label, attribute, padded, plain_gemm


@dataclass(frozen=True)
class BatchNormReport:
    """One BN of the graph: what became of it."""

    name: str
    folded_into: str | None  # "Conv conv1 (after it)", or None when kept
    reason: str | None = None  # why it was kept


def _statistics(g: _Graph, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | str:
    """The BN as y = scale * x + shift per channel, or why it cannot be folded."""
    if len([o for o in bn.output if o]) > 1:
        return "it computes batch statistics (training mode)"
    arrays = [g.array(name) for name in bn.input[1:5]]
    if any(a is None for a in arrays):
        return "its parameters are not constants"
    gamma, beta, mean, var = arrays
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    if not all(np.isfinite(a).all() for a in arrays) or (var + eps <= 0).any():
        raise ValueError(f"{_label(bn)}: its statistics are not finite (or the variance is < 0)")
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _weights(g: _Graph, conv: onnx.NodeProto) -> np.ndarray | None:
    """The Conv's weights, if they are a constant only this Conv reads (and its bias, if any,
    a constant)."""
    if len(conv.input) < 2 or g.array(conv.input[1]) is None:
        return None
    if any(n is not conv for n in g.readers(conv.input[1])):
        return None
    if len(conv.input) > 2 and conv.input[2] and g.array(conv.input[2]) is None:
        return None
    return g.array(conv.input[1])


def _bias(g: _Graph, conv: onnx.NodeProto, channels: int) -> tuple[str, np.ndarray]:
    """The Conv's bias constant: its own (a copy where other nodes read it too, as exporters
    share one constant of zeros), or a new one of zeros where it has none."""
    name = f"{conv.output[0]}_folded_bias"
    if len(conv.input) > 2 and conv.input[2]:
        values = g.array(conv.input[2])
        if len(g.readers(conv.input[2])) > 1:
            conv.input[2] = name
            return name, values
        return conv.input[2], values
    if len(conv.input) == 2:
        conv.input.append(name)
    else:  # an empty name: the optional bias left out
        conv.input[2] = name
    return name, np.zeros(channels)


def _fold_after(
    g: _Graph, conv: onnx.NodeProto, bn: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray
) -> bool:
    """y = s (W * x + b) + t = (s W) * x + (s b + t), per output channel (a Gemm's weights
    are [out, in] with transB, else [in, out])."""
    weights = _weights(g, conv)
    out_axis = 1 if conv.op_type == "Gemm" and not attribute(conv, "transB", 0) else 0
    if weights is None or weights.shape[out_axis] != len(scale):
        return False
    dtype = numpy_helper.to_array(g.constants[conv.input[1]]).dtype
    bias_name, bias = _bias(g, conv, len(scale))
    per_output = [1] * weights.ndim
    per_output[out_axis] = -1
    g.set_constant(conv.input[1], weights * scale.reshape(per_output), dtype)
    g.set_constant(bias_name, bias * scale + shift, dtype)
    conv.output[0] = bn.output[0]
    return True


def _fold_before(
    g: _Graph,
    convs: list[onnx.NodeProto],
    bn: onnx.NodeProto,
    scale: np.ndarray,
    shift: np.ndarray,
) -> bool:
    """y = W * (s x + t) + b = (W s) * x + (b + W t), per group; unpadded convolutions only."""
    for conv in convs:
        weights = _weights(g, conv)
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if weights is None or weights.shape[1] * group != len(scale):
            return False
    for conv in convs:
        weights = _weights(g, conv)
        dtype = numpy_helper.to_array(g.constants[conv.input[1]]).dtype
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        per_group, outputs = len(scale) // group, weights.shape[0] // group
        s = scale.reshape(group, 1, per_group)  # [group, 1, in per group]
        t = shift.reshape(group, 1, per_group)
        w = weights.reshape(group, outputs, per_group, -1)
        added = (w.sum(axis=3) * t).sum(axis=2).reshape(-1)
        bias_name, bias = _bias(g, conv, weights.shape[0])
        scaled = (w * s[..., None]).reshape(weights.shape)
        g.set_constant(conv.input[1], scaled, dtype)
        g.set_constant(bias_name, bias + added, dtype)
        conv.input[0] = bn.input[0]
    return True


def _why_kept(g: _Graph, bn: onnx.NodeProto) -> str:
    readers = g.readers(bn.output[0])
    if readers and all(r.op_type == "Conv" for r in readers):
        return "before a convolution with zero padding (the shift would be wrong at the borders)"
    producer = g.producer(bn.input[0])
    after = producer.op_type if producer is not None else "the graph's input"
    return f"after {after}, before {', '.join(sorted({r.op_type for r in readers})) or 'output'}"


def fold_batchnorms(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[BatchNormReport]]:
    """A copy of `model` with every BN folded where that is exact, and what became of each."""
    model = copy.deepcopy(model)
    g = _Graph(model)
    report = []
    for bn in [n for n in g.graph.node if n.op_type == "BatchNormalization"]:
        found = _statistics(g, bn)
        if isinstance(found, str):
            report.append(BatchNormReport(_label(bn), None, found))
            continue
        scale, shift = found
        producer = g.producer(bn.input[0])
        readers = g.readers(bn.output[0])
        if (
            producer is not None
            and (
                producer.op_type == "Conv" or (producer.op_type == "Gemm" and plain_gemm(producer))
            )
            and g.only_reader(bn.input[0], bn)
            and _fold_after(g, producer, bn, scale, shift)
        ):
            report.append(BatchNormReport(_label(bn), f"{_label(producer)} (after it)"))
        elif (
            readers
            and bn.output[0] not in g.outputs
            and all(r.op_type == "Conv" and r.input[0] == bn.output[0] for r in readers)
            and not any(padded(r) for r in readers)
            and _fold_before(g, readers, bn, scale, shift)
        ):
            into = ", ".join(_label(r) for r in readers)
            report.append(BatchNormReport(_label(bn), f"{into} (before it)"))
        else:
            report.append(BatchNormReport(_label(bn), None, _why_kept(g, bn)))
            continue
        g.graph.node.remove(bn)
    _drop_unused_constants(g)
    return model, report


def _per_channel(g: _Graph, node: onnx.NodeProto, channels: int) -> np.ndarray | None:
    """The constant operand of a Mul or Add as one value per channel of an NCHW tensor (a
    scalar, [C, 1, 1] or [1, C, 1, 1]), or None if it is not such a constant."""
    values = [g.array(name) for name in node.input]
    if len(values) != 2 or (values[0] is None) == (values[1] is None):
        return None
    constant = values[0] if values[0] is not None else values[1]
    if constant.size == 1:
        return np.full(channels, float(constant.reshape(-1)[0]))
    if constant.shape not in ((channels, 1, 1), (1, channels, 1, 1)):
        return None  # [C] or [C, 1, 1, 1] would broadcast over another axis
    return constant.reshape(channels)


def _merge_into_bn(
    g: _Graph, bn: onnx.NodeProto, node: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray
) -> bool:
    """s (gamma x_hat + beta) + t = (s gamma) x_hat + (s beta + t): the BN absorbs them."""
    names = bn.input[1:3]
    arrays = [g.array(name) for name in names]
    if any(a is None for a in arrays) or any(len(g.readers(n)) > 1 for n in names):
        return False
    dtype = numpy_helper.to_array(g.constants[names[0]]).dtype
    g.set_constant(names[0], arrays[0] * scale, dtype)
    g.set_constant(names[1], arrays[1] * scale + shift, dtype)
    bn.output[0] = node.output[0]
    return True


def fold_mul_add(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with every per-channel Mul and Add by a constant folded into the Conv
    or the BatchNormalization before it (Caffe2 writes a BN's affine as BN, Mul, Add; tf2onnx
    and Keras an inference BN as Mul, Add); how many."""
    model = copy.deepcopy(model)
    g = _Graph(model)
    folded = 0
    for node in [n for n in g.graph.node if n.op_type in ("Mul", "Add")]:
        data = next((name for name in node.input if g.array(name) is None), None)
        producer = g.producer(data) if data is not None else None
        if producer is None or producer.op_type not in ("Conv", "BatchNormalization"):
            continue
        if not g.only_reader(data, node) or len([o for o in producer.output if o]) > 1:
            continue
        if producer.op_type == "Conv":
            weights = _weights(g, producer)
            channels = None if weights is None else weights.shape[0]
        else:
            gamma = g.array(producer.input[1])
            channels = None if gamma is None else len(gamma)
        values = None if channels is None else _per_channel(g, node, channels)
        if values is None:
            continue
        scale = values if node.op_type == "Mul" else np.ones_like(values)
        shift = np.zeros_like(values) if node.op_type == "Mul" else values
        merge = _fold_after if producer.op_type == "Conv" else _merge_into_bn
        if merge(g, producer, node, scale, shift):
            g.graph.node.remove(node)
            folded += 1
    _drop_unused_constants(g)
    return model, folded


def _drop_unused_constants(g: _Graph) -> None:
    read = {name for node in g.graph.node for name in node.input} | g.outputs
    for tensor in [t for t in g.graph.initializer if t.name not in read]:
        g.graph.initializer.remove(tensor)
    for value in [i for i in g.graph.input if i.name in g.constants and i.name not in read]:
        g.graph.input.remove(value)
