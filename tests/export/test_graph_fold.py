"""The fold over an ONNX graph (export/graph_fold.py) against ONNX Runtime running the graph it
was given: small graphs written here with onnx.helper (unit), then topologies nobody here
designed, the onnx wheel's light models, and a ResNet-18 written here and exported by torch.onnx
(e2e). Statistics include negative, zero and 1e-8 gammas."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from skipfold.export.graph_fold import fold_batchnorms

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _gammas(rng: np.random.Generator, channels: int) -> np.ndarray:
    gamma = rng.normal(0, 1, channels)
    gamma[: min(3, channels)] = [-1.5, 0.0, 1e-8][: min(3, channels)]
    return gamma


def _bn(name: str, x: str, y: str, channels: int, rng: np.random.Generator) -> tuple:
    params = {
        "scale": _gammas(rng, channels),
        "B": rng.normal(0, 1, channels),
        "mean": rng.normal(0, 1, channels),
        "var": rng.uniform(0.2, 3, channels),
    }
    inits = [
        numpy_helper.from_array(v.astype(np.float32), f"{name}_{k}") for k, v in params.items()
    ]
    node = helper.make_node(
        "BatchNormalization", [x, *(f"{name}_{k}" for k in params)], [y], name=name, epsilon=1e-3
    )
    return node, inits


def _conv(name: str, x: str, y: str, cin: int, cout: int, rng, *, pads=0, group=1, bias=True):
    w = numpy_helper.from_array(
        rng.normal(0, 0.3, (cout, cin // group, 3 if pads else 1, 3 if pads else 1)).astype(
            np.float32
        ),
        f"{name}_w",
    )
    inits = [w]
    inputs = [x, w.name]
    if bias:
        inits.append(
            numpy_helper.from_array(rng.normal(0, 1, cout).astype(np.float32), f"{name}_b")
        )
        inputs.append(f"{name}_b")
    node = helper.make_node("Conv", inputs, [y], name=name, pads=[pads] * 4, group=group)
    return node, inits


def _model(nodes, inits, channels: int = 4) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _outputs(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feed)


def _assert_same(original: onnx.ModelProto, folded: onnx.ModelProto, feed) -> None:
    for want, got in zip(_outputs(original, feed), _outputs(folded, feed), strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= 1e-4 * scale, np.abs(got - want).max()


def _count(model: onnx.ModelProto, op: str = "BatchNormalization") -> int:
    return sum(n.op_type == op for n in model.graph.node)


FEED = {"x": np.random.default_rng(1).normal(0, 1, (2, 4, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize("bias", [True, False])
def test_a_bn_after_a_padded_conv_is_folded_exactly(bias):
    rng = np.random.default_rng(0)
    conv, conv_inits = _conv("c", "x", "h", 4, 6, rng, pads=1, bias=bias)
    bn, bn_inits = _bn("bn", "h", "y", 6, rng)
    model = _model([conv, bn], conv_inits + bn_inits)
    folded, report = fold_batchnorms(model)
    assert _count(folded) == 0 and report[0].folded_into == "Conv c (after it)"
    _assert_same(model, folded, FEED)
    assert {t.name for t in folded.graph.initializer} >= {"c_w"} and not any(
        t.name.startswith("bn_") for t in folded.graph.initializer
    )


@pytest.mark.parametrize("group", [1, 2, 4])
def test_a_bn_before_unpadded_convs_is_folded_into_each(group):
    rng = np.random.default_rng(0)
    bn, bn_inits = _bn("bn", "x", "h", 4, rng)
    a, a_inits = _conv("a", "h", "ya", 4, 8, rng, group=group)
    b, b_inits = _conv("b", "h", "yb", 4, 4, rng, group=group, bias=False)
    add = helper.make_node("Add", ["ya", "ya"], ["y2"])
    concat = helper.make_node("Concat", ["y2", "yb"], ["y"], axis=1)
    model = _model([bn, a, b, add, concat], bn_inits + a_inits + b_inits)
    folded, report = fold_batchnorms(model)
    assert _count(folded) == 0 and report[0].folded_into == "Conv a, Conv b (before it)"
    _assert_same(model, folded, FEED)


def test_a_bn_before_a_padded_conv_or_after_an_add_is_kept_and_says_why():
    rng = np.random.default_rng(0)
    bn1, bn1_inits = _bn("bn1", "x", "h", 4, rng)
    conv, conv_inits = _conv("c", "h", "k", 4, 4, rng, pads=1)
    add = helper.make_node("Add", ["k", "x"], ["s"], name="add")
    bn2, bn2_inits = _bn("bn2", "s", "y", 4, rng)
    model = _model([bn1, conv, add, bn2], bn1_inits + conv_inits + bn2_inits)
    folded, report = fold_batchnorms(model)
    assert _count(folded) == 2
    assert [(r.name, r.folded_into) for r in report] == [
        ("BatchNormalization bn1", None),
        ("BatchNormalization bn2", None),
    ]
    assert "zero padding" in report[0].reason and report[1].reason.startswith("after Add")
    _assert_same(model, folded, FEED)


def test_statistics_that_are_not_finite_are_refused():
    rng = np.random.default_rng(0)
    conv, conv_inits = _conv("c", "x", "h", 4, 4, rng, pads=1)
    bn, bn_inits = _bn("bn", "h", "y", 4, rng)
    bn_inits[3] = numpy_helper.from_array(np.full(4, np.nan, np.float32), "bn_var")
    with pytest.raises(ValueError, match="BatchNormalization bn: its statistics are not finite"):
        fold_batchnorms(_model([conv, bn], conv_inits + bn_inits))


def test_old_style_weights_listed_as_graph_inputs_stay_a_valid_model():
    rng = np.random.default_rng(0)
    conv, conv_inits = _conv("c", "x", "h", 4, 6, rng, pads=1, bias=False)
    bn, bn_inits = _bn("bn", "h", "y", 6, rng)
    model = _model([conv, bn], conv_inits + bn_inits)
    model.ir_version = 3
    model.opset_import[0].version = 9
    for tensor in model.graph.initializer:
        model.graph.input.append(
            helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
        )
    folded, _ = fold_batchnorms(model)
    onnx.checker.check_model(folded)
    inputs = {i.name for i in folded.graph.input}
    assert {t.name for t in folded.graph.initializer} <= inputs and "bn_var" not in inputs
    _assert_same(model, folded, FEED)


def _materialized(name: str, seed: int = 0) -> onnx.ModelProto:
    """A light model with random weights in place of its ConstantOfShape placeholders and random
    BN statistics (gammas of every sign among them)."""
    model = onnx.load(str(LIGHT / f"{name}.onnx"))
    rng = np.random.default_rng(seed)
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "ConstantOfShape"]:
        shape = tuple(int(d) for d in constants[node.input[0]])
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        values = rng.normal(0, np.sqrt(1.0 / fan_in), shape).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(values, node.output[0]))
        graph.input.append(helper.make_tensor_value_info(node.output[0], 1, shape))
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    for value in [v for v in graph.input if v.name not in used]:
        graph.input.remove(value)
    tensors = {t.name: t for t in graph.initializer}
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        channels = tensors[bn.input[1]].dims[0]
        values = {
            1: _gammas(rng, channels),
            2: rng.normal(0, 0.5, channels),
            3: rng.normal(0, 0.5, channels),
            4: rng.uniform(0.5, 2, channels),
        }
        for index, array in values.items():
            tensor = tensors[bn.input[index]]
            tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float32), tensor.name))
    return model


@pytest.mark.e2e
@pytest.mark.parametrize(
    "name", ["light_resnet50", "light_densenet121", "light_inception_v2", "light_shufflenet"]
)
def test_the_onnx_wheels_light_models_fold_every_bn_after_a_conv(name):
    model = _materialized(name)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    after_conv = sum(
        producers.get(n.input[0]) == "Conv"
        for n in model.graph.node
        if n.op_type == "BatchNormalization"
    )
    folded, report = fold_batchnorms(model)
    assert sum(r.folded_into is not None for r in report) >= after_conv
    assert all(r.reason for r in report if r.folded_into is None)
    weights = {t.name for t in model.graph.initializer}
    data = next(i for i in model.graph.input if i.name not in weights)
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    feed = {data.name: np.random.default_rng(2).normal(0, 1, shape).astype(np.float32)}
    _assert_same(model, folded, feed)


@pytest.mark.e2e
def test_a_resnet18_exported_by_torch_folds_every_bn_and_matches_torch(tmp_path):
    import torch

    from tests.export import torch_nets

    net = torch_nets.with_random_statistics(torch_nets.resnet18())
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model = onnx.load(str(torch_nets.export(net, tmp_path / "resnet18.onnx")))
    assert _count(model) == 20  # the exporter kept every BN as a node
    folded, report = fold_batchnorms(model)
    assert _count(folded) == 0 and all(r.folded_into for r in report)
    with torch.no_grad():
        reference = net.double()(images.double()).numpy()  # float64: the independent reference
    got = _outputs(folded, {"input": images.numpy()})[0]
    assert np.abs(got - reference).max() <= 1e-4 * max(1.0, float(np.abs(reference).max()))


def _mul_add_graph(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv -> Mul -> Add by per-channel constants ([C, 1, 1] and [1, C, 1, 1]), then a Mul by
    a scalar after a second Conv, and an Add whose constant is not per-channel (kept)."""
    conv1, inits1 = _conv("c1", "x", "h1", 4, 6, rng, pads=1, bias=False)
    conv2, inits2 = _conv("c2", "h4", "h5", 6, 6, rng, pads=1)
    constants = {
        "m1": rng.normal(0, 1, (6, 1, 1)),
        "a1": rng.normal(0, 1, (1, 6, 1, 1)),
        "m2": np.array(-0.5),
        "a2": rng.normal(0, 1, (8,)),  # broadcasts over the width: not per channel
    }
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in constants.items()]
    nodes = [
        conv1,
        helper.make_node("Mul", ["h1", "m1"], ["h2"]),
        helper.make_node("Add", ["a1", "h2"], ["h3"]),
        helper.make_node("Relu", ["h3"], ["h4"]),
        conv2,
        helper.make_node("Mul", ["h5", "m2"], ["h6"]),
        helper.make_node("Add", ["h6", "a2"], ["y"]),
    ]
    return _model(nodes, inits1 + inits2 + inits)


def test_a_per_channel_mul_and_add_after_a_conv_are_folded_exactly():
    from skipfold.export.graph_fold import fold_mul_add

    model = _mul_add_graph(np.random.default_rng(3))
    folded, count = fold_mul_add(model)
    onnx.checker.check_model(folded)
    assert count == 3
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Relu", "Conv", "Add"]
    _assert_same(model, folded, FEED)


def test_a_per_channel_mul_and_add_after_a_bn_merge_into_it():
    """Caffe2's BN -> Mul -> Add (its SpatialBN then its scale and bias) as one BN."""
    from skipfold.export.graph_fold import fold_mul_add

    rng = np.random.default_rng(5)
    bn, bn_inits = _bn("bn", "x", "h1", 4, rng)
    constants = {"m": rng.normal(0, 1, (4, 1, 1)), "a": rng.normal(0, 1, (1, 4, 1, 1))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in constants.items()]
    nodes = [
        bn,
        helper.make_node("Mul", ["h1", "m"], ["h2"]),
        helper.make_node("Add", ["h2", "a"], ["h3"]),
        helper.make_node("Relu", ["h3"], ["y"]),
    ]
    model = _model(nodes, bn_inits + inits)
    merged, count = fold_mul_add(model)
    onnx.checker.check_model(merged)
    assert count == 2 and [n.op_type for n in merged.graph.node] == ["BatchNormalization", "Relu"]
    _assert_same(model, merged, FEED)
