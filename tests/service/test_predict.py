"""POST /predict: images in every format, top-k out, and a clear error for bad input."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from skipfold.service.app import create_app
from skipfold.service.settings import Settings
from tests.helpers import direct_probabilities, png, sample_images
from tests.tiny_models import CLASSES


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
def test_every_format_and_mode_is_accepted_and_resized(
    client, repo, serving_device, fmt, mode, options
):
    array = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image = Image.fromarray(array).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = image.convert("I;16")
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    response = client.post("/predict", files={"file": (f"x.{fmt}", buffer.getvalue())})
    assert response.status_code == 200, response.text
    # the answer is the model's on the image as decoded and resized to its 32x32 input
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    resized = Image.fromarray(decoded).resize((32, 32), Image.Resampling.BILINEAR)
    expected = direct_probabilities(repo, "bn", 2, np.asarray(resized)[None])[0]
    top = response.json()["results"][0]["predictions"]
    assert [p["index"] for p in top] == list(np.argsort(-expected)[: len(top)])
    rel = 1e-6 if serving_device == "cpu" else 1e-4  # CUDA adds in another order
    assert [p["probability"] for p in top] == pytest.approx(
        expected[[p["index"] for p in top]], rel=rel
    )


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
        bomb = io.BytesIO()
        Image.new("1", (4000, 4000)).save(bomb, "PNG")  # 16 M pixels in about 2 KB
        assert len(bomb.getvalue()) < 20_000
        response = client.post("/predict", files={"file": ("bomb.png", bomb.getvalue())})
        assert response.status_code == 413 and "pixels" in response.json()["error"]


def test_the_pixel_limit_follows_the_models_input(client):
    # the tiny models take 32x32: 4,096 times that is 2048x2048
    assert client.app.state.decoder.max_pixels == 2048 * 2048
    big = io.BytesIO()
    Image.new("RGB", (2048, 2049)).save(big, "PNG")
    response = client.post("/predict", files={"file": ("big.png", big.getvalue())})
    assert response.status_code == 413
    assert "2048x2049 = 4,196,352 pixels; the limit is 4,194,304" in response.json()["error"]
