"""What can be checked of CUDA graphs without a GPU: the flag and setting, and the refusal of a
model whose outputs have no fixed shape past the batch (tests/service/test_cuda.py runs them)."""

import argparse

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from skipfold.service import cli
from skipfold.service.cuda_graphs import CudaGraphError, CudaGraphs
from skipfold.service.settings import Settings


def test_the_flag_sets_the_setting_and_its_absence_leaves_the_environment_to_decide(monkeypatch):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args(["--cuda-graphs"]).cuda_graphs is True
    assert parser.parse_args([]).cuda_graphs is None
    monkeypatch.setenv("SKIPFOLD_CUDA_GRAPHS", "true")
    assert Settings(device="cuda").cuda_graphs is True
    with pytest.raises(ValueError, match="cuda_graphs needs device cuda"):
        Settings(device="cpu")  # the environment's cuda_graphs, on the CPU: refused


def test_outputs_without_a_fixed_shape_past_the_batch_are_refused():
    node = helper.make_node("Identity", ["images"], ["same"])
    graph = helper.make_graph(
        [node],
        "dynamic",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", "h", 4, 3])],
        [helper.make_tensor_value_info("same", TensorProto.UINT8, ["n", "h", 4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"images": np.zeros((1, 2, 4, 3), np.uint8)})[0].shape == (1, 2, 4, 3)
    with pytest.raises(CudaGraphError, match="output 'same' is tensor\\(uint8\\)"):
        CudaGraphs(session, "images", ["same"])
