"""Models that are not image classifiers, in process: loaded from a hand-made repository, batched
as Triton batches them (per model where its config asks or auto-complete turns it on; only
requests whose shapes agree beyond the batch go together), each answer its own."""

import asyncio

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from skipfold.service.inference import InferenceEngine
from skipfold.service.metrics import Metrics
from skipfold.service.registry import ModelRegistry
from skipfold.service.settings import Settings
from tests.service import any_models


def _open_width() -> onnx.ModelProto:
    """float [N, W] -> ReduceSum over W -> [N, 1]: any width, so widths must not mix."""
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "W"])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N", 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _batches(metrics: Metrics, model: str) -> tuple[float, float]:
    """(calls, items) the engine ran for `model`."""
    labels = {"model": model}
    count = metrics.registry.get_sample_value("skipfold_batch_size_count", labels) or 0.0
    return count, metrics.registry.get_sample_value("skipfold_batch_size_sum", labels) or 0.0


def test_batching_follows_the_config_and_joins_only_matching_shapes(tmp_path):
    any_models.place(tmp_path, "nchw", any_models.nchw(), any_models.NCHW_CONFIG)
    any_models.place(tmp_path, "pair", any_models.two_inputs())
    any_models.place(tmp_path, "width", _open_width())
    registry = ModelRegistry.load(Settings(repository=tmp_path, intra_op_threads=1))
    pair, nchw, width = (registry.get(n, None) for n in ("pair", "nchw", "width"))
    assert pair.signature.dynamic_batching and width.signature.dynamic_batching
    assert not nchw.signature.dynamic_batching  # its config.pbtxt has no dynamic_batching
    rng = np.random.default_rng(3)
    features = rng.normal(0, 1, (3, 4)).astype(np.float32)
    offsets = np.array([[1], [-2], [7]], np.int64)
    pixels = rng.normal(0, 1, (2, 1, 3, 16, 16)).astype(np.float32)
    rows = [rng.normal(0, 1, (1, w)).astype(np.float32) for w in (3, 5, 3)]
    metrics = Metrics()

    async def scenario():
        engine = InferenceEngine(metrics, max_batch_size=0, max_queue_delay_ms=300)
        results = await asyncio.gather(
            *(engine.infer(pair, features[i : i + 1], offsets[i : i + 1]) for i in range(3)),
            *(engine.infer(nchw, p) for p in pixels),
            *(engine.infer(width, r) for r in rows),
        )
        await engine.close()
        return results

    results = asyncio.run(scenario())
    expected = any_models.reference(
        any_models.two_inputs(), {"features": features, "offset": offsets}
    )
    for i in range(3):
        np.testing.assert_allclose(results[i].outputs[0], expected[0][i : i + 1], rtol=1e-6)
        np.testing.assert_array_equal(results[i].outputs[1], expected[1][i : i + 1])
    for row, result in zip(rows, results[5:], strict=True):
        np.testing.assert_allclose(result.outputs[0], row.sum(axis=1, keepdims=True), rtol=1e-5)
    assert _batches(metrics, "pair") == (1, 3)  # one call of all three
    assert _batches(metrics, "nchw") == (2, 2)  # one call each
    assert _batches(metrics, "width") == (2, 3)  # widths 3 and 3 together, 5 alone


def test_an_import_of_a_fixed_batch_of_one_is_served_one_image_per_call(tmp_path):
    """Triton requires a dynamic first dimension to batch: a graph of a fixed batch of one gets
    max_batch_size 0 and its whole shapes, and /predict runs several images one by one."""
    from fastapi.testclient import TestClient

    from skipfold.cli import main
    from skipfold.formats.model_config import ModelConfig
    from skipfold.service.app import create_app
    from tests.export.test_import import _pooling_graph
    from tests.helpers import png

    source = _pooling_graph(tmp_path / "fixed.onnx", batch=1, softmax=True)
    repo = tmp_path / "repo"
    assert main(["import", str(source), "--repo", str(repo), "--preprocess", "unit"]) == 0
    config = (repo / "fixed" / "config.pbtxt").read_text()
    # max_batch_size 0, the default, goes unwritten in protobuf text format
    assert "max_batch_size" not in config and "dims: [1, 8, 8, 3]" in config
    assert ModelConfig.parse(config).input_size == (8, 8)
    # solid colours, so that resizing keeps every pixel: the channel means are the colours
    images = [np.full((32, 32, 3), colour, np.uint8) for colour in ([200, 10, 90], [5, 60, 250])]
    with TestClient(create_app(Settings(repository=repo, intra_op_threads=1))) as client:
        served = client.app.state.registry.get("fixed", None)
        assert served.input_size == (8, 8) and served.signature.one_at_a_time
        files = [("file", (f"{i}.png", png(image), "image/png")) for i, image in enumerate(images)]
        answers = client.post("/predict?model=fixed&top_k=3", files=files)
        assert answers.status_code == 200, answers.text
    for image, result in zip(images, answers.json()["results"], strict=True):
        means = image[0, 0] / 255  # the graph's logits: the channel means
        expected = np.exp(means) / np.exp(means).sum()
        top = result["predictions"][0]
        assert top["index"] == int(expected.argmax())
        assert top["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
