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


def _initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name)).copy()


def _set(model: onnx.ModelProto, name: str, values: np.ndarray) -> None:
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float32), name))


def _set_gamma(model: onnx.ModelProto, bn: str, channel: int, gamma: float) -> None:
    values = _initializer(model, f"{bn}_scale")
    values[channel] = gamma
    _set(model, f"{bn}_scale", values)


def _fold_kept(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list]:
    """The default fold (nothing left behind), and the BNs it kept."""
    folded, report = fold_preactivation(*fold_batchnorms(model))
    return folded, [entry for entry in report if entry.folded_into is None]


def _typical(model: onnx.ModelProto, seed: int = 7) -> onnx.ModelProto:
    """Every gamma in [0.5, 1.5], as trained networks mostly have them."""
    rng = np.random.default_rng(seed)
    for tensor in list(model.graph.initializer):
        if tensor.name.endswith("_scale"):
            _set(model, tensor.name, rng.uniform(0.5, 1.5, tensor.dims))
    return model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_preactivation_network_loses_every_bn_exactly(seed):
    model = _preact_net(np.random.default_rng(seed))
    after_conv, report = fold_batchnorms(model)
    assert _count(after_conv) == 3  # b1n2 followed a Conv; the three before ReLUs remain
    folded, report = fold_preactivation(after_conv, report, allow_residue=True)
    onnx.checker.check_model(folded)
    assert _count(folded) == 0 and all(entry.folded_into for entry in report)
    # what is left of them: an Add for the channel whose gamma is 1e-8 (its offset would swamp
    # the stream), per BN; a Mul by the signs at most before the ReLUs of b1n1 and b2n1, which
    # read one stream (negated for one, it would give the other negative gammas), none before
    # the final BN's (the Convs that make its stream negate it; its zero gamma's relu(beta) goes
    # into the Gemm's bias)
    muls = {n.output[0] for n in folded.graph.node if n.op_type == "Mul"}
    assert muls <= {"b1a_mul_out", "b2a_mul_out"}
    assert _count(folded, "Add") == 2 + 3
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
    assert len(kept) == 3 and all("zero or tiny gamma" in e.reason for e in kept)
    _assert_same(odd, folded, FEED)
    typical = _typical(_preact_net(np.random.default_rng(6)))
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


def test_negative_and_zero_gammas_fold_where_the_stream_can_take_them():
    """Typical gammas but a negative one in channel 2 of b1n1 and of b2n1 (which read one
    stream) and in the final BN, and a zero one with a positive beta in the final BN: by
    default all fold, nothing left (x0's and x2's makers negate those channels, b2n1 takes the
    sign back, and is then positive; the zero channel's relu(beta) goes into the Gemm's bias).
    A negative gamma in b2n1 alone keeps it: x1 cannot be negated, as x0 feeds b1's ReLU."""
    model = _typical(_preact_net(np.random.default_rng(9)))
    changes = (("b1n1", 2, -1.2), ("b2n1", 2, -0.6), ("final", 4, -0.7), ("final", 1, 0.0))
    for name, channel, gamma in changes:
        _set_gamma(model, name, channel, gamma)
    _set(model, "final_B", np.abs(_initializer(model, "final_B")) + 0.5)
    folded, kept = _fold_kept(model)
    assert not kept
    assert _count(folded) == 0 and _count(folded, "Mul") == 0 and _count(folded, "Add") == 2
    _assert_same(model, folded, FEED)
    _set_gamma(model, "b2n1", 0, -1.0)
    folded, kept = _fold_kept(model)
    assert [e.name for e in kept] == ["BatchNormalization b2n1"]
    assert "x cannot be negated" in kept[0].reason
    _assert_same(model, folded, FEED)


def test_a_stream_is_not_negated_where_another_bn_reading_it_would_then_keep():
    """b1n1 negative in channel 3, b2n1 (reading the same stream) positive there: negating the
    stream would give b2n1 a negative gamma; b1n1 stays instead (by default), b2n1 folds."""
    model = _typical(_preact_net(np.random.default_rng(10)))
    _set_gamma(model, "b1n1", 3, -0.8)
    folded, kept = _fold_kept(model)
    assert [e.name for e in kept] == ["BatchNormalization b1n1"]
    assert "b2n1, which reads it too, would get negative gammas" in kept[0].reason
    _assert_same(model, folded, FEED)


def test_a_densenets_block_inputs_take_negative_and_zero_gammas(tmp_path):
    """DenseNet-BC by torch.onnx, typical gammas but negative and zero ones in the first BN of
    each dense block: those fold whole by default (the stem's Conv and the transition's Conv,
    through its pooling, negate the channels; the later BNs reading them through the Concats
    take the signs back), leaving only the BNs after a Concat; outputs as the original's."""
    import torch

    from skipfold.export.folding import fold_graph
    from tests.export import torch_nets

    net = torch_nets.with_random_statistics(torch_nets.densenet_bc(), seed=5, typical=True)
    for first in (net[1].body[0], net[8].body[0]):
        first.weight.data[:4] = torch.tensor([-1.5, 0.0, -0.3, 0.0])
        first.bias.data[:4] = torch.tensor([0.2, 0.9, -0.4, -0.6])
    model = onnx.load(str(torch_nets.export(net, tmp_path / "densenet.onnx")))
    folding = fold_graph(model)
    kept = [entry.reason for entry in folding.report if entry.folded_into is None]
    assert len(kept) == 6 and all(reason.startswith("after Concat") for reason in kept), kept
    assert _count(folding.model, "Mul") == 0
    images = np.random.default_rng(2).normal(0, 1, (3, 3, 32, 32)).astype(np.float32)
    _assert_same(model, folding.model, {"input": images})


def test_a_reader_whose_gamma_and_variance_are_one_constant_keeps_the_stream_as_it_is():
    """x0 also feeds a BN whose gamma and variance are one merged constant (as simplifiers
    write equal constants), then a sigmoid: negating its gamma for b1n1's negative one would
    negate its variance too, so b1n1 stays, and every output stays as it was."""
    rng = np.random.default_rng(11)
    model = _typical(_preact_net(rng))
    _set_gamma(model, "b1n1", 0, -0.9)
    _set_gamma(model, "b2n1", 0, -0.7)  # agreeing: b2n1 would take the sign back
    side, side_inits = _bn("side", "x0", "side_bn", 6, rng)
    side.input[4] = side.input[1]  # the variance read from the gamma's constant
    model.graph.node.extend([side, helper.make_node("Sigmoid", ["side_bn"], ["side_out"])])
    model.graph.initializer.extend(side_inits)
    _set(model, side.input[1], rng.uniform(0.5, 1.5, 6))
    model.graph.output.append(helper.make_tensor_value_info("side_out", TensorProto.FLOAT, None))
    folded, kept = _fold_kept(model)
    assert "BatchNormalization b1n1" in [e.name for e in kept]
    assert "parameters of its own" in next(e.reason for e in kept if e.name.endswith("b1n1"))
    _assert_same(model, folded, FEED)
