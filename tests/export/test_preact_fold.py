"""The pre-activation fold over an ONNX graph (export/preact_fold.py) against ONNX Runtime
running the graph it was given: pre-activation residual graphs written here with onnx.helper,
BN statistics with negative, zero and 1e-8 gammas, and graphs where the offset has nowhere to
go (kept, and the graph left exact)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from skipfold.export.graph_fold import fold_batchnorms
from skipfold.export.preact_fold import fold_preactivation
from tests.export.test_graph_fold import FEED, _assert_same, _bn, _conv, _count


def _preact_net(rng: np.random.Generator, *, stem_padding: int = 1) -> onnx.ModelProto:
    """stem Conv -> x0; block: BN, ReLU, padded Conv, BN, ReLU, padded Conv, + x0 -> x1;
    a second block with a 1x1 projection shortcut from its first ReLU; BN, ReLU, global
    pooling, Flatten, Gemm."""
    nodes, inits = [], []

    def add(made):
        nodes.append(made[0])
        inits.extend(made[1])

    add(_conv("stem", "x", "x0", 4, 6, rng, pads=stem_padding, bias=False))
    add(_bn("b1n1", "x0", "b1a", 6, rng))
    nodes.append(helper.make_node("Relu", ["b1a"], ["b1r"]))
    add(_conv("b1c1", "b1r", "b1h", 6, 6, rng, pads=1, bias=False))
    add(_bn("b1n2", "b1h", "b1b", 6, rng))
    nodes.append(helper.make_node("Relu", ["b1b"], ["b1s"]))
    add(_conv("b1c2", "b1s", "b1o", 6, 6, rng, pads=1, bias=False))
    nodes.append(helper.make_node("Add", ["b1o", "x0"], ["x1"]))
    add(_bn("b2n1", "x1", "b2a", 6, rng))
    nodes.append(helper.make_node("Relu", ["b2a"], ["b2r"]))
    add(_conv("b2c1", "b2r", "b2h", 6, 8, rng, pads=1))
    add(_conv("b2sc", "b2r", "b2p", 6, 8, rng, bias=False))  # 1x1 projection shortcut
    nodes.append(helper.make_node("Relu", ["b2h"], ["b2s"]))
    add(_conv("b2c2", "b2s", "b2o", 8, 8, rng, pads=1))
    nodes.append(helper.make_node("Add", ["b2p", "b2o"], ["x2"]))
    add(_bn("final", "x2", "fa", 8, rng))
    nodes += [
        helper.make_node("Relu", ["fa"], ["fr"]),
        helper.make_node("GlobalAveragePool", ["fr"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    inits += [
        numpy_helper.from_array(rng.normal(0, 0.3, (5, 8)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.normal(0, 1, 5).astype(np.float32), "fc_b"),
    ]
    graph = helper.make_graph(
        nodes,
        "preact",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_preactivation_network_loses_every_bn_exactly(seed):
    model = _preact_net(np.random.default_rng(seed))
    after_conv, report = fold_batchnorms(model)
    assert _count(after_conv) == 3  # b1n2 followed a Conv; the three before ReLUs remain
    folded, report = fold_preactivation(after_conv, report, allow_residue=True)
    onnx.checker.check_model(folded)
    assert _count(folded) == 0 and all(entry.folded_into for entry in report)
    # what is left of them: a Mul by the signs (gamma -1.5) and an Add for the channels whose
    # gamma is 0 or 1e-8 (their offsets would swamp the stream), per BN
    assert _count(folded, "Mul") == 3 and _count(folded, "Add") == 2 + 3
    _assert_same(model, folded, FEED)


def test_a_stream_that_also_feeds_a_padded_conv_keeps_its_bn():
    """The stem's output feeds block 1's BN and, here, a padded Conv too: an offset on it would
    be wrong at that Conv's borders, so that BN stays, and the graph stays exact."""
    rng = np.random.default_rng(3)
    model = _preact_net(rng)
    side, side_inits = _conv("side", "x0", "side_out", 6, 6, rng, pads=1)
    model.graph.node.append(side)
    model.graph.initializer.extend(side_inits)
    model.graph.output.append(helper.make_tensor_value_info("side_out", TensorProto.FLOAT, None))
    folded, report = fold_preactivation(*fold_batchnorms(model), allow_residue=True)
    kept = [entry for entry in report if entry.folded_into is None]
    assert [entry.name for entry in kept] == ["BatchNormalization b1n1"]
    assert "pads with zeros" in kept[0].reason
    _assert_same(model, folded, FEED)


def test_by_default_only_bns_that_leave_nothing_behind_fold():
    """Gammas of every sign (the test's statistics): each pre-activation BN is kept, with the
    reason; the same network with gammas in [0.5, 1.5]: all fold, no Mul or Add added."""
    odd = _preact_net(np.random.default_rng(6))
    folded, report = fold_preactivation(*fold_batchnorms(odd))
    kept = [entry for entry in report if entry.folded_into is None]
    assert len(kept) == 3 and all("negative, zero or tiny gamma" in e.reason for e in kept)
    _assert_same(odd, folded, FEED)
    typical = _preact_net(np.random.default_rng(6))
    for tensor in typical.graph.initializer:
        if tensor.name.endswith("_scale"):
            gamma = np.random.default_rng(7).uniform(0.5, 1.5, tensor.dims)
            tensor.CopyFrom(numpy_helper.from_array(gamma.astype(np.float32), tensor.name))
    folded, report = fold_preactivation(*fold_batchnorms(typical))
    assert _count(folded) == 0 and all(entry.folded_into for entry in report)
    assert _count(folded, "Mul") == 0 and _count(folded, "Add") == 2  # the residual Adds
    _assert_same(typical, folded, FEED)


def test_a_gemm_with_a_beta_keeps_the_bn_before_it():
    """The fold assumes a Gemm computes A W' + C: with beta 0.5 the final BN stays."""
    model = _preact_net(np.random.default_rng(8))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    gemm.attribute.append(helper.make_attribute("beta", 0.5))
    folded, report = fold_preactivation(*fold_batchnorms(model), allow_residue=True)
    kept = [entry for entry in report if entry.folded_into is None]
    assert [e.name for e in kept] == ["BatchNormalization final"]
    assert "alpha, beta or transA" in kept[0].reason
    _assert_same(model, folded, FEED)


def test_a_bn_on_the_graph_input_is_kept_with_its_reason():
    rng = np.random.default_rng(4)
    bn, bn_inits = _bn("bn", "x", "h", 4, rng)
    conv, conv_inits = _conv("c", "r", "y", 4, 4, rng, pads=1)
    graph = helper.make_graph(
        [bn, helper.make_node("Relu", ["h"], ["r"]), conv],
        "input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        bn_inits + conv_inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folded, report = fold_preactivation(*fold_batchnorms(model))
    assert report[0].folded_into is None and "no Conv makes its input" in report[0].reason
    _assert_same(model, folded, FEED)
