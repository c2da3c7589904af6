"""`skipfold import` on graphs written here with onnx.helper (no torch, no processes): the
standardization inside the graph against numpy, the layouts and channel orders, and every bad
input refused in one line with exit 2 and nothing written."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from skipfold.cli import main
from skipfold.export.import_options import ImportOptions
from skipfold.export.importer import build
from skipfold.formats.model_card import ModelCard

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's "L" mode


def _pooling_graph(path, *, layout="NCHW", channels=3, elem=TensorProto.FLOAT, softmax=False,
                   opset=18, size=(8, 8), batch="n"):  # fmt: skip
    """The input's per-channel spatial mean as the 'logits': what standardization gave."""
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    dims = [batch, channels, *size] if layout == "NCHW" else [batch, *size, channels]
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
    if opset >= 18:
        nodes.append(helper.make_node("ReduceMean", ["xf", "axes"], ["mean"], keepdims=0))
        inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes")]
    else:
        nodes.append(helper.make_node("ReduceMean", ["xf"], ["mean"], axes=axes, keepdims=0))
        inits = []
    nodes.append(helper.make_node("Softmax", ["mean"], ["y"], axis=1) if softmax else
                 helper.make_node("Identity", ["mean"], ["y"]))  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "pool",
        [helper.make_tensor_value_info("x", elem, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, channels])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _run(model_bytes: bytes, images: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(["logits", "probabilities"], {"images": images})


IMAGES = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "layout, order, channels",
    [("NCHW", "rgb", 3), ("NHWC", "rgb", 3), ("NCHW", "bgr", 3), ("NHWC", "rgb", 1)],
)
def test_the_standardization_in_the_graph_is_numpys(tmp_path, layout, order, channels):
    path = _pooling_graph(tmp_path / "pool.onnx", layout=layout, channels=channels)
    mean, std = [0.5, 0.25, 0.125][:channels], [0.2, 0.3, 0.4][:channels]
    options = ImportOptions(mean=mean, std=std, channel_order=order, preprocess="unit")
    imported = build(path, options)
    pixels = IMAGES.astype(np.float64) / 255
    if order == "bgr":
        pixels = pixels[..., ::-1]
    if channels == 1:
        pixels = (pixels @ LUMA)[..., None]
    expected = ((pixels - mean) / std).mean(axis=(1, 2))
    logits, probabilities = _run(imported.model_bytes, IMAGES)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-6)
    metadata = onnx.load_from_string(imported.model_bytes).metadata_props
    card = ModelCard.from_metadata({p.key: p.value for p in metadata})  # what the file carries
    assert (card.imported_from.input_layout, card.imported_from.channels) == (layout, channels)
    assert (card.mean, card.std, card.resize_shorter) == (mean, std, None)


def test_presets_and_the_final_softmax(tmp_path):
    path = _pooling_graph(tmp_path / "pool.onnx", softmax=True, size=(16, 16))
    imported = build(path, ImportOptions(preprocess="imagenet"))
    images = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    imagenet_mean, imagenet_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    pixels = images.astype(np.float64) / 255
    expected = ((pixels - imagenet_mean) / imagenet_std).mean(axis=(1, 2))
    logits, probabilities = _run(imported.model_bytes, images)
    np.testing.assert_allclose(logits, expected, atol=1e-5)  # the Softmax's input: the logits
    softmax = np.exp(expected) / np.exp(expected).sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, softmax, atol=1e-6)
    card = imported.card
    assert card.imported_from.outputs == "probabilities"
    assert card.resize_shorter == 18  # int(16 / 0.875): timm's crop_pct
    assert card.variant == "imported" and card.classes == ["0", "1", "2"]


def test_an_old_opset_is_converted_and_uint8_input_is_taken_as_it_is(tmp_path):
    path = _pooling_graph(tmp_path / "old.onnx", layout="NHWC", elem=TensorProto.UINT8, opset=11)
    imported = build(path, ImportOptions(preprocess="none"))
    model = onnx.load_from_string(imported.model_bytes)
    assert model.opset_import[0].version == 18 and imported.card.imported_from.opset == 11
    logits, _ = _run(imported.model_bytes, IMAGES)
    np.testing.assert_allclose(logits, IMAGES.astype(np.float64).mean(axis=(1, 2)), atol=1e-4)


def _cli(tmp_path, model, *flags):
    repo = tmp_path / "repo"
    return main(["import", str(model), "--repo", str(repo), *flags]), repo


def _two_inputs(path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def _unknown_op(path):
    graph = helper.make_graph(
        [helper.make_node("Mystery", ["x"], ["y"], domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))


def _bn_graph(path, var, external=False):
    channels = 3
    params = {"s": np.ones(channels), "b": np.zeros(channels), "m": np.zeros(channels), "v": var}
    inits = [numpy_helper.from_array(np.full((channels, channels, 1, 1), 0.5, np.float32), "w")]
    inits += [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in params.items()]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
            helper.make_node("ReduceMean", ["n", "axes"], ["y"], keepdims=0),
        ],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [*inits, numpy_helper.from_array(np.array([2, 3], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path), save_as_external_data=external, size_threshold=0,
              location="weights.bin")  # fmt: skip
    return path


BAD = {
    "not onnx": (lambda p: p.write_bytes(b"hello, not a model"), (), "not an ONNX model"),
    "two inputs": (_two_inputs, (), "needs one image input, found 2"),
    "unknown operator": (_unknown_op, (), "ONNX Runtime cannot run it"),
    "missing external data": (
        lambda p: (_bn_graph(p, np.ones(3), external=True), (p.parent / "weights.bin").unlink()),
        (),
        "external data",
    ),
    "NaN statistics": (lambda p: _bn_graph(p, [1.0, np.nan, 1.0]), (), "not finite"),
    "3 means for 1 channel": (
        lambda p: _pooling_graph(p, channels=1),
        ("--mean", "0.5,0.5,0.5"),
        "--mean has 3 numbers, but the graph's input has 1 channel",
    ),
    "uint8 input with bgr": (
        lambda p: _pooling_graph(p, layout="NHWC", elem=TensorProto.UINT8),
        ("--preprocess", "none", "--channel-order", "bgr"),
        "--channel-order do not apply",
    ),
    "crop against a fixed height": (
        lambda p: _pooling_graph(p, size=(8, "w")),
        ("--center-crop", "6"),
        "contradicts the graph's input of 8x?",
    ),
    "dynamic size": (
        lambda p: _pooling_graph(p, size=("h", "w")),
        (),
        "give --center-crop",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys, case):
    make, flags, message = BAD[case]
    model = tmp_path / "model.onnx"
    make(model)
    code, repo = _cli(tmp_path, model, *flags)
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("skipfold import: error:")
    assert not repo.exists()


def test_a_name_taken_by_another_signature_is_refused_before_the_work(tmp_path, capsys):
    first = _pooling_graph(tmp_path / "three.onnx", channels=3)
    assert _cli(tmp_path, first, "--name", "net")[0] == 0
    other = _pooling_graph(tmp_path / "one.onnx", channels=1)
    code, repo = _cli(tmp_path, other, "--name", "net")
    err = capsys.readouterr().err
    assert code == 2 and "different signature" in err
    assert sorted(p.name for p in (repo / "net").iterdir()) == ["1", "config.pbtxt", "labels.txt"]


def test_class_names_from_a_file_and_a_bn_folded(tmp_path, capsys):
    model = _bn_graph(tmp_path / "bn.onnx", [1.0, 2.0, 0.5])
    labels = tmp_path / "classes.json"
    labels.write_text(json.dumps(["cat", "dog", "emu"]))
    code, repo = _cli(tmp_path, model, "--classes", str(labels), "--preprocess", "unit")
    out = capsys.readouterr().out
    assert code == 0 and "1 of 1 BatchNormalization nodes folded" in out
    assert (repo / "bn" / "labels.txt").read_text() == "cat\ndog\nemu\n"
    card = ModelCard.read(repo / "bn" / "1" / "model.onnx")
    assert card.classes == ["cat", "dog", "emu"] and card.fold_report[0].folded_into
    served = onnx.load(str(repo / "bn" / "1" / "model.onnx"))
    assert not any(n.op_type == "BatchNormalization" for n in served.graph.node)


def test_a_tf2onnx_style_nhwc_graph_with_mul_add_bns_imports_folded(tmp_path):
    """NHWC input, a Transpose to NCHW, Conv -> Mul -> Add (a Keras BN as tf2onnx writes it)."""
    rng = np.random.default_rng(4)
    arrays = {
        "w": rng.normal(0, 0.3, (5, 3, 3, 3)),
        "bias": rng.normal(0, 1, 5),
        "m": rng.normal(0, 1, (5, 1, 1)),
        "a": rng.normal(0, 1, (5, 1, 1)),
        "axes": np.array([2, 3]),
    }
    inits = [
        numpy_helper.from_array(v.astype(np.int64 if k == "axes" else np.float32), k)
        for k, v in arrays.items()
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "bias"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "m"], ["s"]),
        helper.make_node("Add", ["s", "a"], ["t"]),
        helper.make_node("ReduceMean", ["t", "axes"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        inits,
    )
    path = tmp_path / "tf.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    imported = build(path, ImportOptions(preprocess="unit"))
    model = onnx.load_from_string(imported.model_bytes)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Mul") == 0 and ops.count("Add") == 1  # the preprocessing's own Add
    pixels = (IMAGES.astype(np.float32) / 255)[..., [0, 1, 2]]
    original = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = original.run(None, {"x": pixels})[0]
    np.testing.assert_allclose(_run(imported.model_bytes, IMAGES)[0], expected, atol=1e-5)


def test_a_corrupt_verify_image_is_refused_before_the_fold(tmp_path, capsys):
    model = _bn_graph(tmp_path / "bn.onnx", [1.0, 2.0, 0.5])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, repo = _cli(tmp_path, model, "--verify-images", str(broken))
    err = capsys.readouterr().err
    assert code == 2 and "broken.png" in err and err.count("\n") == 1
    assert not repo.exists()
