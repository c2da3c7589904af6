"""The app as a whole: the lifespan, /models, /metrics, failures, dynamic batching."""

import asyncio

import httpx
import numpy as np
from fastapi.testclient import TestClient

from skipfold.service.app import create_app
from skipfold.service.settings import Settings
from tests.helpers import direct_probabilities, png, sample_images
from tests.tiny_models import CLASSES


def test_a_failing_model_is_a_500_without_internals_and_the_traceback_is_logged(repo, caplog):
    settings = Settings(repository=repo, intra_op_threads=1, models="skipinit")
    with TestClient(create_app(settings)) as client:
        served = client.app.state.registry.get("skipinit", None)

        def broken(images):  # fault injection: the session fails mid-call
            raise RuntimeError("onnxruntime exploded at node /conv7")

        served.runner = broken
        response = client.post(
            "/predict", content=png(sample_images(1)[0]), headers={"content-type": "image/png"}
        )
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (logged on the server)"}
    assert response.headers["x-request-id"]
    assert "conv7" in caplog.text and "Traceback" in caplog.text


def test_models_lists_what_is_served(client, serving_device):
    body = client.get("/models").json()
    assert body["default"] == "bn"
    by_name = {m["name"]: m for m in body["models"]}
    assert by_name["bn"]["versions"] == [1, 2]
    skipinit = by_name["skipinit"]
    assert (skipinit["variant"], skipinit["depth"], skipinit["width"]) == ("skipinit", 10, 1)
    assert skipinit["folded"] is True
    assert skipinit["classes"] == list(CLASSES)
    assert skipinit["input_shape"] == [-1, 32, 32, 3]
    on_cuda = ["CUDAExecutionProvider"] if serving_device == "cuda" else []
    assert skipinit["execution_providers"] == [*on_cuda, "CPUExecutionProvider"]


def test_by_default_every_model_is_served_at_its_latest_version(repo):
    with TestClient(create_app(Settings(repository=repo))) as client:
        assert client.get("/v2/models/bn").json()["versions"] == ["2"]
        assert client.get("/v2/models/bn/versions/1/ready").status_code == 404
        assert client.get("/v2/models/skipinit/ready").status_code == 200


def _samples(client) -> dict[tuple, float]:
    """/metrics parsed by prometheus_client's own parser: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_model_and_status(client):
    before = _samples(client)
    for _ in range(2):
        client.post(
            "/predict",
            params={"model": "skipinit"},
            files={"file": ("a.png", png(sample_images(1)[0]))},
        )
    client.post(
        "/predict", params={"model": "skipinit"}, content=b"", headers={"content-type": "image/png"}
    )
    after = _samples(client)

    def added(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = "skipfold_requests_total"
    assert added(requests, endpoint="predict", model="skipinit", status="200") == 2
    assert added(requests, endpoint="predict", model="skipinit", status="400") == 1
    for stage in ("queue", "inference", "total"):  # the answered requests, timed
        assert added("skipfold_request_latency_seconds_count", model="skipinit", stage=stage) == 2
    assert added("skipfold_batch_size_count", model="skipinit") == 2  # two calls of one image
    assert added("skipfold_batch_size_sum", model="skipinit") == 2
    assert after[("skipfold_requests_in_flight", ())] == 0


def test_dynamic_batching_merges_concurrent_requests_without_mixing_them(repo):
    images = sample_images(24, seed=9)
    expected = direct_probabilities(repo, "bn", 2, images)
    settings = Settings(repository=repo, max_batch_size=8, max_queue_delay_ms=50)
    app = create_app(settings)

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

                async def one(i):
                    tensor = {
                        "name": "images",
                        "shape": [1, 32, 32, 3],
                        "datatype": "UINT8",
                        "data": images[i].reshape(-1).tolist(),
                    }
                    r = await http.post(
                        "/v2/models/bn/infer",
                        json={"inputs": [tensor], "outputs": [{"name": "probabilities"}]},
                    )
                    return np.array(r.json()["outputs"][0]["data"])

                results = await asyncio.gather(*(one(i) for i in range(24)))
            metrics = app.state.metrics.render().decode()
        return results, metrics

    results, metrics = asyncio.run(scenario())
    for i, row in enumerate(results):
        np.testing.assert_allclose(row, expected[i], rtol=1e-5, atol=1e-7)
    calls = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith('skipfold_batch_size_count{model="bn"}')
        )
    )
    assert calls < 24  # merged: fewer ONNX Runtime calls than requests
