"""The app in-process (FastAPI's TestClient runs the lifespan), on real ONNX Runtime sessions."""

import asyncio

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import png, sample_images
from training.shapes import CLASSES


@pytest.fixture(scope="module")
def client(repo):
    settings = Settings(repository=repo, intra_op_threads=1, models="bn:1:2,skipinit")
    with TestClient(create_app(settings)) as client:
        yield client


def direct_probabilities(repo, name, version, images):
    session = ort.InferenceSession(str(repo / name / str(version) / "model.onnx"))
    return session.run(["probabilities"], {"images": images})[0]


def test_predict_multipart_matches_onnx_runtime_called_directly(client, repo):
    images = sample_images(2)
    files = [("file", (f"{i}.png", png(img), "image/png")) for i, img in enumerate(images)]
    response = client.post("/predict", files=files, params={"top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("bn", 2)  # default model, latest version
    assert body["request_id"] == response.headers["x-request-id"]
    assert [r["filename"] for r in body["results"]] == ["0.png", "1.png"]
    expected = direct_probabilities(repo, "bn", 2, images)
    for result, row in zip(body["results"], expected, strict=True):
        top = result["predictions"]
        assert len(top) == 3
        assert [p["index"] for p in top] == list(np.argsort(-row)[:3])
        assert [p["probability"] for p in top] == pytest.approx(row[[p["index"] for p in top]])
        assert top[0]["label"] == CLASSES[top[0]["index"]]
    timings = body["timings_ms"]
    assert set(timings) == {"decode", "queue", "inference", "total"}
    assert all(v >= 0 for v in timings.values()) and timings["total"] >= timings["inference"]


def test_raw_body_model_and_version_selection(client, repo):
    image = sample_images(1, seed=3)
    response = client.post(
        "/predict",
        content=png(image[0]),
        headers={"content-type": "image/png"},
        params={"model": "bn", "version": 1, "top_k": 10},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    probabilities = [p["probability"] for p in body["results"][0]["predictions"]]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    expected = direct_probabilities(repo, "bn", 1, image)[0]
    assert body["results"][0]["predictions"][0]["index"] == int(expected.argmax())


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("JPEG", "RGB", {"quality": 95}),
        ("WEBP", "RGBA", {"lossless": True}),
        ("BMP", "L", {}),
        ("GIF", "P", {}),
        ("PNG", "I;16", {}),
    ],
)
def test_every_format_and_mode_is_accepted_and_resized(client, fmt, mode, options):
    array = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image = Image.fromarray(array).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = image.convert("I;16")
    buffer = __import__("io").BytesIO()
    image.save(buffer, fmt, **options)
    response = client.post("/predict", files={"file": (f"x.{fmt}", buffer.getvalue())})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
        (
            {"content": b"\x89PNG\r\n\x1a\nbroken", "headers": {"content-type": "image/png"}},
            400,
            "corrupt",
        ),
        (
            {"content": b"plain text", "headers": {"content-type": "image/png"}},
            415,
            "not a supported image",
        ),
        ({"content": b"{}", "headers": {"content-type": "application/json"}}, 415, "content type"),
        ({"files": {"other": ("a.png", b"x")}}, 400, "'file' field"),
        ({"files": {"file": ("a.tiff", b"II*\x00" + b"\x00" * 64)}}, 415, "not a supported image"),
    ],
)
def test_bad_input_gets_a_specific_json_error(client, kwargs, status, message):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert response.headers["x-request-id"]


def test_unknown_model_or_version_is_404(client):
    image = {"file": ("a.png", png(sample_images(1)[0]))}
    assert client.post("/predict", params={"model": "nope"}, files=image).status_code == 404
    response = client.post("/predict", params={"model": "bn", "version": 7}, files=image)
    assert response.status_code == 404 and "no version" in response.json()["error"]
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/bn/versions/9/ready").status_code == 404


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


def test_predict_with_another_method_is_405(client):
    response = client.get("/predict")
    assert response.status_code == 405 and "not allowed" in response.json()["error"]


def test_openapi_documents_predict(client):
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {"model", "version", "top_k"}
    assert set(operation["requestBody"]["content"]) == {"image/*", "multipart/form-data"}


def test_invalid_query_parameters_are_400_not_422(client):
    response = client.post("/predict?top_k=0", content=b"x", headers={"content-type": "image/png"})
    assert response.status_code == 400 and "top_k" in response.json()["error"]


def test_limits_body_size_and_decompression_bombs(repo):
    settings = Settings(repository=repo, max_body_bytes=20_000, max_image_pixels=1_000_000)
    with TestClient(create_app(settings)) as client:
        big = client.post(
            "/predict", content=b"\x00" * 20_001, headers={"content-type": "image/png"}
        )
        assert big.status_code == 413 and "limit" in big.json()["error"]
        bomb = __import__("io").BytesIO()
        Image.new("1", (4000, 4000)).save(bomb, "PNG")  # 16 M pixels in about 2 KB
        assert len(bomb.getvalue()) < 20_000
        response = client.post("/predict", files={"file": ("bomb.png", bomb.getvalue())})
        assert response.status_code == 413 and "pixels" in response.json()["error"]


def test_api_key_protects_inference_but_not_probes(repo):
    with TestClient(create_app(Settings(repository=repo, api_key="s3cret"))) as client:
        image = {"file": ("a.png", png(sample_images(1)[0]))}
        assert client.post("/predict", files=image).status_code == 401
        assert client.get("/models").status_code == 401
        wrong = client.post("/predict", files=image, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
        ok = client.post("/predict", files=image, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/healthz").status_code == 200


def test_models_lists_what_is_served(client):
    body = client.get("/models").json()
    assert body["default"] == "bn"
    by_name = {m["name"]: m for m in body["models"]}
    assert by_name["bn"]["versions"] == [1, 2]
    skipinit = by_name["skipinit"]
    assert (skipinit["variant"], skipinit["depth"], skipinit["width"]) == ("skipinit", 10, 1)
    assert skipinit["folded"] is True
    assert skipinit["classes"] == list(CLASSES)
    assert skipinit["input_shape"] == [-1, 32, 32, 3]
    assert skipinit["execution_providers"] == ["CPUExecutionProvider"]


def test_by_default_every_model_is_served_at_its_latest_version(repo):
    with TestClient(create_app(Settings(repository=repo))) as client:
        assert client.get("/v2/models/bn").json()["versions"] == ["2"]
        assert client.get("/v2/models/bn/versions/1/ready").status_code == 404
        assert client.get("/v2/models/skipinit/ready").status_code == 200


def test_metrics_count_requests_by_model_and_status(client):
    client.post(
        "/predict",
        params={"model": "skipinit"},
        files={"file": ("a.png", png(sample_images(1)[0]))},
    )
    client.post(
        "/predict", params={"model": "skipinit"}, content=b"", headers={"content-type": "image/png"}
    )
    text = client.get("/metrics").text
    assert 'skipfold_requests_total{endpoint="predict",model="skipinit",status="200"}' in text
    assert 'skipfold_requests_total{endpoint="predict",model="skipinit",status="400"}' in text
    for stage in ("queue", "inference", "total"):
        assert f'skipfold_request_latency_seconds_count{{model="skipinit",stage="{stage}"}}' in text
    assert "skipfold_batch_size_bucket" in text
    assert "skipfold_requests_in_flight 0.0" in text


def test_v2_json_inference_and_metadata(client, repo):
    images = sample_images(3, seed=5)
    request = {
        "id": "abc",
        "inputs": [
            {
                "name": "images",
                "shape": [3, 32, 32, 3],
                "datatype": "UINT8",
                "data": images.tolist(),
            }
        ],
        "outputs": [
            {"name": "probabilities"},
            {"name": "probabilities", "parameters": {"classification": 2}},
        ],
    }
    response = client.post("/v2/models/skipinit/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("skipinit", "1", "abc")
    probabilities, top2 = body["outputs"]
    expected = direct_probabilities(repo, "skipinit", 1, images)
    np.testing.assert_allclose(np.array(probabilities["data"]).reshape(3, 10), expected, rtol=1e-6)
    assert top2["datatype"] == "BYTES" and top2["shape"] == [3, 2]
    assert top2["data"][0].split(":")[1] == str(expected[0].argmax())
    meta = client.get("/v2/models/skipinit").json()
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}]
    assert client.get("/v2").json()["name"] == "skipfold"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"datatype": "FP32"}, "UINT8"),
        ({"shape": [1, 32, 32]}, "shape"),
        ({"name": "x"}, "unknown input"),
        ({"data": [300] * 3072}, "0..255"),
        ({"data": [1, 2, 3]}, "3072"),
    ],
)
def test_v2_bad_tensors_are_400(client, change, message):
    tensor = {"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8", "data": [0] * 3072}
    response = client.post("/v2/models/bn/infer", json={"inputs": [tensor | change]})
    assert response.status_code == 400
    assert message in response.json()["error"]


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
