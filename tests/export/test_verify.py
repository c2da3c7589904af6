"""Verification catches a graph that computes something else."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from skipfold.export.fold import fold_model
from skipfold.export.onnx_graph import ImageClassifier, export_onnx
from skipfold.export.verify import VerificationError, random_images, verify
from skipfold.models import build_model
from tests.export.conftest import randomize

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


@pytest.fixture(scope="module")
def model_and_graph():
    model = randomize(build_model("bn", 10, 1))
    return model, export_onnx(ImageClassifier(fold_model(model), MEAN, STD), (32, 32))


def test_a_correct_graph_passes_and_reports_its_figures(model_and_graph):
    model, graph = model_and_graph
    figures = verify(graph.SerializeToString(), model, MEAN, STD, random_images(64, (32, 32)))
    assert figures["images"] == 64
    assert 0 <= figures["max_abs_logit_diff"] <= 1e-4
    assert figures["top1_agreement"] == 1.0


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
