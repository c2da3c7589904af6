"""The exported graph, run for real in ONNX Runtime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from skipfold.export.folding import fold_exported
from skipfold.export.graph_stats import flops_per_image, op_counts
from skipfold.export.onnx_graph import ImageClassifier, export_onnx
from skipfold.export.verify import random_images, reference_logits
from skipfold.models import build_model
from tests.export.conftest import randomize

MEAN, STD = [0.45, 0.5, 0.55], [0.25, 0.2, 0.3]


@pytest.fixture(scope="module")
def bn_model():
    return randomize(build_model("bn", 16, 2), odd_gammas=False)


@pytest.fixture(scope="module")
def folded_graph(bn_model):
    return fold_exported(export_onnx(ImageClassifier(bn_model, MEAN, STD), (32, 32)))


@pytest.fixture(scope="module")
def unfolded_graph(bn_model):
    return export_onnx(ImageClassifier(bn_model, MEAN, STD), (32, 32))


def session(graph, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(graph.SerializeToString(), options, ["CPUExecutionProvider"])


def test_folded_graph_has_no_batchnorm_and_the_skipinit_graph_ops(folded_graph):
    skipinit = randomize(build_model("skipinit", 16, 2))
    skipinit_graph = fold_exported(export_onnx(ImageClassifier(skipinit, MEAN, STD), (32, 32)))
    assert "BatchNormalization" not in op_counts(folded_graph)
    assert op_counts(folded_graph) == op_counts(skipinit_graph)
    # 1 stem + 6 blocks x 2 + 3 projection shortcuts (16->32 too); 6 residual adds + 1 preprocessing
    assert op_counts(folded_graph)["Conv"] == 16
    assert op_counts(folded_graph)["Add"] == 7


def test_unfolded_graph_keeps_every_batchnorm(unfolded_graph):
    # 6 blocks x 2 + the final norm; the exporter's own conv+BN fusion is off
    assert op_counts(unfolded_graph)["BatchNormalization"] == 13


def test_graph_contract(folded_graph):
    assert folded_graph.opset_import[0].version >= 18
    assert all(
        init.data_location == onnx.TensorProto.DEFAULT for init in folded_graph.graph.initializer
    )
    (image_input,) = folded_graph.graph.input
    assert image_input.name == "images"
    assert image_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in image_input.type.tensor_type.shape.dim]
    assert dims[1:] == [32, 32, 3] and isinstance(dims[0], str)
    assert [o.name for o in folded_graph.graph.output] == ["logits", "probabilities"]


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_any_batch_size_matches_pytorch(bn_model, folded_graph, unfolded_graph, batch):
    images = random_images(batch, (32, 32), seed=batch)
    expected = reference_logits(bn_model, images, MEAN, STD)
    for graph in (folded_graph, unfolded_graph):
        logits, probabilities = session(graph).run(None, {"images": images})
        assert logits.shape == probabilities.shape == (batch, 10)
        assert logits.dtype == probabilities.dtype == np.float32
        np.testing.assert_allclose(logits, expected, atol=1e-4)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)


def test_per_image_standardization_in_the_graph_matches_training():
    model = randomize(build_model("skipinit", 10, 1))
    graph = fold_exported(export_onnx(ImageClassifier(model, MEAN, STD, per_image=True), (32, 32)))
    images = random_images(8, (32, 32))
    images[0] = 77  # a flat image: its std is 0, the floor applies
    expected = reference_logits(model, images, MEAN, STD, per_image=True)
    logits, _ = session(graph).run(None, {"images": images})
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_flops_per_image_counts_every_conv_and_the_classifier(folded_graph):
    model = build_model("bn", 16, 2)
    expected, sizes = 0, {}

    def record(module, inputs, output):
        sizes[module] = output.shape

    hooks = [
        m.register_forward_hook(record)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    model(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    for module, shape in sizes.items():
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        else:
            per_output = module.in_features
        expected += 2 * int(np.prod(shape[1:])) * per_output
    assert flops_per_image(folded_graph) == expected


def test_wrn_16_4_is_about_0_785_gflop_per_image():
    graph = export_onnx(ImageClassifier(build_model("skipinit", 16, 4), MEAN, STD), (32, 32))
    assert flops_per_image(graph) == pytest.approx(0.785e9, rel=0.01)
