"""ONNX Runtime's CUDA provider on a GPU (pytest --device cuda; skipped elsewhere): I/O-bound runs
and CUDA-graph replays of real exported WRNs against the CPU provider on fresh random images, at
batch sizes captured and not; the server's --device auto."""

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from skipfold.formats.model_repository import ModelRepository
from skipfold.service.app import create_app
from skipfold.service.cuda_graphs import MAX_CAPTURED_BATCH
from skipfold.service.runtime import CUDA, Runner, create_session, resolve_providers
from skipfold.service.settings import Settings
from tests.helpers import png, sample_images

PNG = {"content-type": "image/png"}

pytestmark = pytest.mark.gpu


def _runner(path, device: str, graphs: bool = False) -> Runner:
    return Runner(create_session(path, resolve_providers(device), 1, "all", device, graphs))


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.mark.parametrize("name", ["bn", "skipinit"])
def test_cuda_and_its_graphs_give_the_cpu_providers_outputs(exported_repo, name):
    path = ModelRepository(exported_repo).latest()[name]
    cpu, cuda, graphs = _runner(path, "cpu"), _runner(path, "cuda"), _runner(path, "cuda", True)
    assert cuda.on_cuda and cuda.graphs is None and graphs.graphs is not None
    rng = np.random.default_rng(0)
    large = MAX_CAPTURED_BATCH + 1  # runs without a graph
    # each size several times: captured on its first call, replayed after that
    for batch in (1, 3, 1, 8, 3, large, 1, 8, 3, 1, 8, large):
        for _ in range(2):
            images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
            want_logits, want_probabilities = cpu(images)
            for runner in (cuda, graphs):
                logits, probabilities = runner(images)
                assert logits.shape == want_logits.shape and logits.dtype == np.float32
                # float32 on both sides (TF32 off): far under 1e-3
                assert _relative(logits, want_logits) < 1e-4, (batch, runner.graphs)
                assert np.abs(probabilities - want_probabilities).max() < 1e-5
    assert graphs.graphs.captured_sizes == [1, 3, 8]


def test_a_replayed_graph_reads_each_calls_images(exported_repo):
    """Two different batches in turn through one captured size: a replay that read a stale
    input buffer would answer the first batch's outputs for the second."""
    path = ModelRepository(exported_repo).latest()["bn"]
    graphs = _runner(path, "cuda", True)
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    first = [graphs(a)[0] for _ in range(4)]  # captured, then replayed
    second = graphs(b)[0]
    assert all(np.array_equal(first[0], f) for f in first)
    assert not np.allclose(first[-1], second)
    assert np.array_equal(graphs(a)[0], first[0])


def test_device_auto_serves_on_cuda_where_there_is_a_gpu(repo):
    assert CUDA in ort.get_available_providers()
    settings = Settings(repository=repo, device="auto", cuda_graphs=True, models="bn")
    with TestClient(create_app(settings)) as client:
        (model,) = client.get("/models").json()["models"]
        answer = client.post("/predict", content=png(sample_images(1)[0]), headers=PNG)
    assert model["execution_providers"][0] == CUDA and model["cuda_graphs"] is True
    assert answer.status_code == 200, answer.text
