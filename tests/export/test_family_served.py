"""The BN paper's networks of the model family (the MLP, sigmoid Wide-ResNets) as a user takes
them: `skipfold export` from a run folder, then `skipfold serve`, answering tritonclient over
HTTP and gRPC with the float64 PyTorch network's logits and `/predict` with its top-1."""

import httpx
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from skipfold.formats.model_card import ModelCard
from skipfold.training.checkpoint import load_trained
from skipfold.training.run_folder import RunFolder
from tests.export.conftest import float64_logits, make_run
from tests.helpers import Server, free_port, png, sample_images, skipfold

pytestmark = pytest.mark.e2e

NETWORKS = {
    "mlp-bn-sigmoid": ("bn", 3, 20, {"architecture": "mlp", "activation": "sigmoid"}),
    "mlp-none-relu": ("none", 2, 16, {"architecture": "mlp"}),
    "wrn-bn-sigmoid": ("bn", 10, 1, {"activation": "sigmoid", "init_scale": 0.5}),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    repo = root / "repo"
    for name, (variant, depth, width, options) in NETWORKS.items():
        run = make_run(root / name, variant, depth, width, model_options=options)
        result = skipfold("export", run, "--repo", repo)
        assert result.returncode == 0, result.stderr
    grpc_port = free_port()
    server = Server(repo, "--grpc-port", str(grpc_port))
    server.wait_ready()
    yield root, repo, server, f"127.0.0.1:{grpc_port}"
    server.stop()


@pytest.mark.parametrize("name", NETWORKS)
def test_exported_and_served_they_answer_as_the_float64_network(served, name):
    root, repo, server, grpc_address = served
    card = ModelCard.read(repo / name / "1" / "model.onnx")
    variant, depth, width, options = NETWORKS[name]
    assert (card.variant, card.depth, card.width, card.folded) == (variant, depth, width, True)
    assert card.architecture == options.get("architecture", "wrn")
    assert card.activation == options.get("activation", "relu")
    assert "BatchNormalization" not in card.op_counts

    model, config = load_trained(RunFolder(root / name))
    images = sample_images(4, seed=5)
    reference = float64_logits(model.to(torch.float64), images, config.data.mean, config.data.std)
    for module, client in (
        (triton_http, triton_http.InferenceServerClient(server.url.removeprefix("http://"))),
        (triton_grpc, triton_grpc.InferenceServerClient(grpc_address)),
    ):
        tensor = module.InferInput("images", list(images.shape), "UINT8")
        tensor.set_data_from_numpy(images)
        logits = client.infer(name, [tensor]).as_numpy("logits")
        np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)
    response = httpx.post(
        f"{server.url}/predict?model={name}",
        content=png(images[0]),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 200, response.text
    top = response.json()["results"][0]["predictions"][0]
    assert top["index"] == int(reference[0].argmax())
