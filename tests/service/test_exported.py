"""Trained WRNs exported by skipfold export, behind a real server (needs torch to make them)."""

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from skipfold.common.shapes import CLASSES
from skipfold.formats.model_card import ModelCard
from tests.helpers import Server, png, sample_images

pytestmark = pytest.mark.e2e


def test_exported_models_serve_what_onnx_runtime_computes(exported_repo):
    server = Server(exported_repo)
    server.wait_ready()
    try:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        images = sample_images(4, seed=11)
        for name, version in (("bn", 2), ("skipinit", 1)):
            path = exported_repo / name / str(version) / "model.onnx"
            card = ModelCard.read(path)
            assert (card.variant, card.depth, card.width, card.folded) == (name, 10, 1, True)
            assert card.classes == list(CLASSES)
            expected = ort.InferenceSession(str(path)).run(None, {"images": images})
            tensor = triton.InferInput("images", list(images.shape), "UINT8")
            tensor.set_data_from_numpy(images)
            result = client.infer(name, [tensor])
            np.testing.assert_allclose(result.as_numpy("logits"), expected[0], rtol=1e-5, atol=1e-6)
            response = httpx.post(
                f"{server.url}/predict?model={name}&top_k=1",
                content=png(images[0]),
                headers={"content-type": "image/png"},
            )
            answer = response.json()["results"][0]["predictions"][0]
            assert answer["index"] == int(expected[1][0].argmax())
            assert answer["label"] == CLASSES[answer["index"]]
    finally:
        server.stop()
