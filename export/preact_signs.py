"""Negative gammas of a pre-activation BN moved into the signs of the layers around it
(export/preact_fold.py).

relu(s x + t) with s < 0 in a channel is relu(|s| (-x) + t): if the layers that make x can make
-x in that channel instead, the BN reads -x with a positive scale and folds whole, with no Mul
by the signs left before its ReLU. A Conv negates the channel's filter and bias; a BN its gamma
and beta; an Add needs both addends negated; linear pooling negates its input. Every other
reader of a negated value then takes the sign back: a BN in its gamma and mean, a Conv or a
Gemm in the channel's weights (padded or not: -0 is 0), and Adds, linear pooling and channel
Concats pass it on to their readers. Where a value on the way cannot (a ReLU, max pooling, the
graph's output), nothing is changed; nor where a pre-activation BN still to fold (one after
this one) would get a negative gamma: BNs reading one stream fold whole together only where
their signs agree.
Negation is exact in floating point.
"""

from __future__ import annotations

import numpy as np
import onnx

from skipfold.export.graph_fold import _Graph, _label, _weights
from skipfold.export.graph_nodes import attribute, plain_gemm, spatial_mean
from skipfold.export.preact_offset import (
    channels_kept,
    offset_source,
    planned_bias,
    scale_input_channels,
)

# ops that compute f(-x) = -f(x) channel by channel (average pooling, padded or not: 0 = -0)
ODD_PASS = {"AveragePool", "GlobalAveragePool", "Identity"}


def _odd(g: _Graph, node: onnx.NodeProto) -> bool:
    return (
        node.op_type in ODD_PASS
        or spatial_mean(g, node)
        or (node.op_type == "Flatten" and channels_kept(g, node))
    )


def _own(g: _Graph, node: onnx.NodeProto, names: list[str]) -> bool:
    """Constants that only `node` reads, each in one of its inputs (so negating one changes
    nothing else: exporters and simplifiers merge equal constants, gamma and var both ones)."""
    return all(
        g.array(n) is not None and len(g.readers(n)) == 1 and list(node.input).count(n) == 1
        for n in names
    )


def _times(edits: dict, g: _Graph, name: str, factor: np.ndarray) -> None:
    edits[name] = edits.get(name, g.array(name)) * factor


class _Plan:
    """The sign each value must carry and the constant edits that make it so."""

    def __init__(self, g: _Graph, bn: onnx.NodeProto, edits: dict, attach: dict) -> None:
        self.g, self.bn, self.edits, self.attach = g, bn, edits, attach
        self.carried: dict[str, np.ndarray] = {}
        self.pending: list[tuple[str, np.ndarray, bool]] = []

    def push(self, value: str, sign: np.ndarray, passed: bool = False) -> str | None:
        """`value` must carry `sign`: made so by its producer, or `passed` on by a node whose
        inputs carry it."""
        known = self.carried.get(value)
        if known is not None:
            return None if np.array_equal(known, sign) else f"{value} would need two signs"
        if value in self.g.outputs:
            return f"the sign would reach the graph's output {value}"
        self.carried[value] = sign
        self.pending.append((value, sign, passed))
        return None

    def make(self, value: str, sign: np.ndarray) -> str | None:
        """Have `value`'s producer make sign * value."""
        g, node = self.g, self.g.producer(value)
        if node is None:
            return f"{value} is not made by a layer that can negate it"
        if node.op_type == "Conv" and _weights(g, node) is not None:
            weights = _weights(g, node)
            if weights.shape[0] != len(sign):
                return f"{_label(node)} has {weights.shape[0]} outputs"
            _times(self.edits, g, node.input[1], sign.reshape(-1, *[1] * (weights.ndim - 1)))
            if len(node.input) > 2 and node.input[2]:
                name = planned_bias(g, node, len(sign), self.edits, self.attach)
                self.edits[name] = self.edits[name] * sign
            return None
        if node.op_type == "BatchNormalization" and _own(g, node, list(node.input[1:3])):
            if len(g.array(node.input[1])) != len(sign):
                return f"{_label(node)} has {len(g.array(node.input[1]))} channels"
            for name in node.input[1:3]:
                _times(self.edits, g, name, sign)
            return None
        if node.op_type == "Add" or _odd(g, node):
            inputs = node.input if node.op_type == "Add" else node.input[:1]
            for name in inputs:
                if (why := self.push(name, sign)) is not None:
                    return why
            return None
        return f"{_label(node)} cannot make its output negated"

    def take_back(self, node: onnx.NodeProto, value: str, sign: np.ndarray) -> str | None:
        """`node` reads `value` negated in `sign`'s channels: it undoes that, or passes it on."""
        g, op = self.g, node.op_type
        if op == "BatchNormalization" and node.input[0] == value:
            return self._in_batchnorm(node, sign)
        if op in ("Conv", "Gemm") and node.input[0] == value and _weights(g, node) is not None:
            return self._in_weights(node, sign)
        if op == "Add":
            for name in node.input:
                if (why := self.push(name, sign)) is not None:
                    return why
            return self.push(node.output[0], sign, passed=True)
        if _odd(g, node) and node.input[0] == value:
            return self.push(node.output[0], sign, passed=True)
        if op == "Concat" and attribute(node, "axis", 0) == 1:
            parts = []
            for name in node.input:
                channels = g.channels(name)
                known = self.carried.get(name)
                if known is None and channels is None:
                    return f"{_label(node)}'s inputs' channels are unknown"
                parts.append(np.ones(channels) if known is None else known)
            return self.push(node.output[0], np.concatenate(parts), passed=True)
        return f"the sign would reach {_label(node)}"

    def _in_batchnorm(self, node: onnx.NodeProto, sign: np.ndarray) -> str | None:
        """A BN reading -x computes the same with its gamma and mean negated."""
        names = [node.input[1], node.input[3]]
        if not _own(self.g, node, names) or len(self.g.array(names[0])) != len(sign):
            return f"{_label(node)} does not have parameters of its own for these channels"
        gamma = self.edits.get(names[0], self.g.array(names[0]))
        readers = self.g.readers(node.output[0])
        nodes = list(self.g.graph.node)
        undecided = nodes.index(node) > nodes.index(self.bn)  # the BNs before it stayed
        before_relu = [r.op_type for r in readers] == ["Relu"]
        foldable = undecided and before_relu and offset_source(self.g, node.input[0]) is not None
        if foldable and ((gamma > 0) & (sign < 0)).any():
            return f"{_label(node)}, which reads it too, would get negative gammas"
        for name in names:
            _times(self.edits, self.g, name, sign)
        return None

    def _in_weights(self, node: onnx.NodeProto, sign: np.ndarray) -> str | None:
        """A Conv or Gemm reading -x computes the same with the channel's weights negated."""
        weights = _weights(self.g, node)
        if node.op_type == "Gemm":
            if not plain_gemm(node):
                return f"{_label(node)} is a Gemm with alpha, beta or transA"
            reads = weights.shape[0 if attribute(node, "transB", 0) == 0 else 1]
        else:
            reads = weights.shape[1] * attribute(node, "group", 1)
        if reads != len(sign):
            return f"{_label(node)} reads {reads} channels"
        scale_input_channels(self.g, node, sign, self.edits)
        return None


def plan_signs(
    g: _Graph, bn: onnx.NodeProto, sign: np.ndarray, edits: dict, attach: dict
) -> str | None:
    """Plan (in `edits`, `attach`) constant edits that make `bn`'s input x carry sign * x, every
    reader of x but `bn` taking the sign back; why not, with `edits` then to be discarded."""
    plan = _Plan(g, bn, edits, attach)
    if (why := plan.push(bn.input[0], sign)) is not None:
        return why
    while plan.pending:
        value, value_sign, passed = plan.pending.pop()
        if not passed and (why := plan.make(value, value_sign)) is not None:
            return why
        for reader in g.readers(value):
            if reader is bn:
                continue
            if (why := plan.take_back(reader, value, value_sign)) is not None:
                return why
    return None
