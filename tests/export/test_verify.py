"""Verification catches a graph that computes something else."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from skipfold.export.folding import fold_exported
from skipfold.export.onnx_graph import ImageClassifier, export_onnx
from skipfold.export.verify import (
    AccuracyDropError,
    VerificationError,
    accuracy_drop,
    check_finite,
    classifier_logits,
    random_images,
    verify,
)
from skipfold.models import build_model
from tests.export.conftest import float64_logits, randomize

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


@pytest.fixture(scope="module")
def model_and_graph():
    model = randomize(build_model("bn", 10, 1))
    return model, fold_exported(export_onnx(ImageClassifier(model, MEAN, STD), (32, 32)))


def test_a_correct_graph_passes_and_reports_its_figures(model_and_graph):
    model, graph = model_and_graph
    images = random_images(64, (32, 32))
    figures = verify(graph.SerializeToString(), model, MEAN, STD, images)
    assert figures["images"] == 64
    assert figures["top1_agreement"] == 1.0
    # the figure is the graph against PyTorch in float32: both within float32 rounding of the
    # float64 network, so at most the sum of their distances to it (and not zero: two programs)
    reference = float64_logits(model, images, MEAN, STD)
    options = ort.SessionOptions()  # as verify runs it: no graph rewrites, one thread
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph.SerializeToString(), options)
    onnx_logits = session.run(["logits"], {"images": images})[0]
    with torch.no_grad():
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        torch_logits = model.eval()(x.contiguous(memory_format=torch.channels_last)).numpy()
    bound = np.abs(onnx_logits - reference).max() + np.abs(torch_logits - reference).max()
    assert 0 < figures["max_abs_logit_diff"] <= bound * (1 + 1e-6)


def test_a_slightly_wrong_weight_fails(model_and_graph):
    model, graph = model_and_graph
    broken = onnx.ModelProto()
    broken.CopyFrom(graph)
    conv_weight = next(i for i in broken.graph.initializer if len(i.dims) == 4)
    values = numpy_helper.to_array(conv_weight).copy()
    values *= 1.001  # a 0.1% error in one layer
    conv_weight.CopyFrom(numpy_helper.from_array(values, conv_weight.name))
    with pytest.raises(VerificationError, match="disagrees"):
        verify(broken.SerializeToString(), model, MEAN, STD, random_images(64, (32, 32)))


def test_wrong_preprocessing_fails(model_and_graph):
    model, graph = model_and_graph
    with pytest.raises(VerificationError):
        verify(
            graph.SerializeToString(), model, MEAN, np.array(STD) * 1.01, random_images(8, (32, 32))
        )


def test_float16_arithmetic_overflows_in_pytorch_and_is_refused():
    """An activation past 65,504 from weights that fit in float16: PyTorch's float16 kernels
    overflow as CUDA's do, so the fp16 check sees it; float32 stays finite."""
    import torch

    network = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 1, bias=False),
        torch.nn.Conv2d(4, 10, 1, bias=False),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    with torch.no_grad():
        network[0].weight.fill_(30_000.0)  # activations of about 1.8e5
        network[1].weight.fill_(1e-4)
    images = random_images(8, (8, 8))
    exact = classifier_logits(ImageClassifier(network, MEAN, STD), images)
    assert np.isfinite(exact).all() and np.abs(exact).max() < 100
    check_finite(exact, "fp32")
    half = classifier_logits(ImageClassifier(network, MEAN, STD, dtype=torch.float16), images)
    with pytest.raises(VerificationError, match="NaN or infinite outputs on 8 of 8 images"):
        check_finite(half, "fp16")
    assert network[0].weight.dtype == torch.float32  # the float16 copy left it as it was


def test_the_accuracy_drop_is_measured_against_the_reference_and_held_to_the_limit():
    labels = np.array([0, 1, 1, 0])
    reference, candidate = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    figures = accuracy_drop(reference, candidate, labels, 30)
    assert (figures["reference_accuracy"], figures["accuracy"]) == (1.0, 0.75)
    assert figures["top1_agreement"] == 0.75 and figures["images"] == 4
    with pytest.raises(AccuracyDropError, match=r"accuracy drop 25\.00 points on 4 test images"):
        accuracy_drop(reference, candidate, labels, 10)
