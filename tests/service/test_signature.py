"""A model's signature from its graph and config.pbtxt: completed from the graph where the config
is missing (Triton's auto-complete), checked against it where written, each misfit one line."""

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from skipfold.formats.model_config import ModelConfig, RepositoryError
from skipfold.service.signature import DEFAULT_MAX_BATCH_SIZE, read_signature
from tests.service import any_models


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _read(model: onnx.ModelProto, config: str | None):
    parsed = None if config is None else ModelConfig.parse(config)
    return read_signature(_session(model), parsed, "m/1/model.onnx")


def test_without_a_config_a_dynamic_batch_completes_to_tritons_default():
    signature = _read(any_models.two_inputs(), None)
    assert signature.max_batch_size == DEFAULT_MAX_BATCH_SIZE == 4
    assert [(t.name, t.datatype, t.dims) for t in signature.inputs] == [
        ("features", "FP32", (4,)),
        ("offset", "INT64", (1,)),
    ]
    assert [(t.name, t.datatype, t.dims) for t in signature.outputs] == [
        ("y", "FP32", (3,)),
        ("positive", "BOOL", (3,)),
    ]
    assert signature.image_size() is None


def test_a_fixed_shape_completes_without_a_batch_dimension():
    signature = _read(any_models.fixed_fp16(), None)
    assert signature.max_batch_size == 0
    assert [(t.datatype, t.dims) for t in signature.inputs] == [("FP16", (2, 3))]
    assert signature.shape(signature.inputs[0]) == [2, 3]


def test_a_written_config_is_served_as_written_and_may_fix_open_sizes():
    signature = _read(any_models.nchw(), any_models.NCHW_CONFIG)
    assert signature.max_batch_size == 8
    assert signature.shape(signature.inputs[0]) == [-1, 3, 16, 16]
    # a config with no tensors: completed from the graph under its max_batch_size
    assert _read(any_models.nchw(), 'name: "nchw"\nmax_batch_size: 2').inputs[0].dims == (3, 16, 16)
    # outputs may be a subset
    subset = 'max_batch_size: 4 output [ { name: "positive" data_type: TYPE_BOOL dims: [ 3 ] } ]'
    assert [t.name for t in _read(any_models.two_inputs(), subset).outputs] == ["positive"]


def _dynamic_width() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "W"])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_config_may_fix_a_size_the_graph_leaves_open():
    fixed = "max_batch_size: 4 input [ { name: 'x' data_type: TYPE_FP32 dims: [ 7 ] } ]"
    assert _read(_dynamic_width(), fixed).inputs[0].dims == (7,)
    assert _read(_dynamic_width(), None).inputs[0].dims == (-1,)


NCHW_INPUT = "input [ { name: 'pixels' data_type: %s dims: %s } ]"
MISFITS = {
    "a type the graph does not take": (
        "max_batch_size: 8 " + NCHW_INPUT % ("TYPE_FP16", "[3, 16, 16]"),
        "declares input 'pixels' as TYPE_FP16; the graph's is TYPE_FP32",
    ),
    "dims that do not fit": (
        "max_batch_size: 8 " + NCHW_INPUT % ("TYPE_FP32", "[3, 32, 32]"),
        "dims [3, 32, 32]; the graph's after the batch dimension are [3, 16, 16]",
    ),
    "-1 where the graph is fixed": (
        "max_batch_size: 8 " + NCHW_INPUT % ("TYPE_FP32", "[3, -1, 16]"),
        "dims [3, -1, 16]",
    ),
    "no batch dimension counted": (
        "max_batch_size: 0 " + NCHW_INPUT % ("TYPE_FP32", "[3, 16, 16]"),
        "dims [3, 16, 16]; the graph's are [-1, 3, 16, 16]",
    ),
    "a name the graph lacks": (
        "max_batch_size: 8 input [ { name: 'image' data_type: TYPE_FP32 dims: [3, 16, 16] } ]",
        "declares input 'image', which the graph does not have (its inputs: pixels)",
    ),
}


@pytest.mark.parametrize("case", MISFITS)
def test_a_config_that_does_not_fit_the_graph_is_refused_naming_the_misfit(case):
    config, message = MISFITS[case]
    with pytest.raises(RepositoryError) as caught:
        _read(any_models.nchw(), config)
    assert message in str(caught.value) and str(caught.value).startswith("m/1/model.onnx: ")


def test_batching_a_graph_of_fixed_first_dimension_is_refused():
    with pytest.raises(RepositoryError, match="max_batch_size 4 needs a dynamic first dimension"):
        _read(any_models.fixed_fp16(), "max_batch_size: 4")


def test_an_input_missing_from_the_config_is_refused():
    config = "max_batch_size: 4 input [ { name: 'features' data_type: TYPE_FP32 dims: [4] } ]"
    with pytest.raises(RepositoryError, match="does not declare the graph's input 'offset'"):
        _read(any_models.two_inputs(), config)


def test_a_string_tensor_is_refused_with_the_types_served():
    nodes = [helper.make_node("Identity", ["s"], ["t"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(RepositoryError, match="input 's' is a tensor\\(string\\); skipfold serves"):
        _read(model, None)


def test_skipfolds_own_export_is_an_image_classifier(repo):
    path = repo / "bn" / "1" / "model.onnx"
    config = ModelConfig.parse((repo / "bn" / "config.pbtxt").read_text())
    signature = read_signature(
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), config, str(path)
    )
    assert signature.image_size() == (32, 32)
    assert [t.name for t in signature.outputs] == ["logits", "probabilities"]
