"""A BN that no fold can remove, written as what it computes in inference: a per-channel Mul and
Add (y = scale x + shift), so that a graph skipfold exports holds no BatchNormalization node.

This is the fate of a BN before a sigmoid (or tanh): the scale cannot move through the
nonlinearity as it moves through a ReLU (sigmoid(s x) is not s sigmoid(x)), nor the shift
into the producers where they feed other readers too (the residual stream). The affine is the
BN's own arithmetic in float64, rounded once to float32.
"""

from __future__ import annotations

import copy
import dataclasses

import onnx
from onnx import helper, numpy_helper

from skipfold.export.graph_fold import BatchNormReport, _drop_unused_constants, _statistics
from skipfold.export.graph_nodes import _Graph, _label

SATURATING = ("Sigmoid", "Tanh")  # not positively homogeneous: no BN moves through them


def affines_before_saturating(
    model: onnx.ModelProto, report: list[BatchNormReport]
) -> tuple[onnx.ModelProto, list[BatchNormReport]]:
    """A copy of `model` with each kept BN that only sigmoids or tanhs read turned into a Mul
    and an Add, and the report saying so."""
    model = copy.deepcopy(model)
    g = _Graph(model)
    entries = {entry.name: entry for entry in report}
    for bn in [n for n in g.graph.node if n.op_type == "BatchNormalization"]:
        readers = g.readers(bn.output[0])
        shape = g.shape(bn.input[0])
        found = _statistics(g, bn)
        if (
            not readers
            or any(r.op_type not in SATURATING for r in readers)
            or isinstance(found, str)
            or shape is None
            or len(shape) < 2
        ):
            continue
        scale, shift = found
        per_channel = (len(scale),) + (1,) * (len(shape) - 2)
        dtype = numpy_helper.to_array(g.constants[bn.input[1]]).dtype
        names = [f"{bn.output[0]}_affine_{part}" for part in ("scale", "shift", "scaled")]
        g.set_constant(names[0], scale.reshape(per_channel), dtype)
        g.set_constant(names[1], shift.reshape(per_channel), dtype)
        mul = helper.make_node("Mul", [bn.input[0], names[0]], [names[2]], name=names[2])
        add = helper.make_node("Add", [names[2], names[1]], [bn.output[0]], name=names[1])
        position = list(g.graph.node).index(bn)
        g.graph.node.remove(bn)
        g.graph.node.insert(position, add)
        g.graph.node.insert(position, mul)
        label = _label(bn)
        into = f"Mul and Add (an explicit affine: {readers[0].op_type} follows)"
        entries[label] = dataclasses.replace(entries[label], folded_into=into, reason=None)
    _drop_unused_constants(g)
    return model, [entries[entry.name] for entry in report]
