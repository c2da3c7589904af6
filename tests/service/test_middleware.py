"""Per-request plumbing: API key, request ids, the access log."""

from fastapi.testclient import TestClient

from skipfold.service.app import create_app
from skipfold.service.settings import Settings
from tests.helpers import png, sample_images


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


def test_request_ids_are_kept_when_sane_and_made_otherwise(client, caplog):
    image = png(sample_images(1)[0])
    headers = {"content-type": "image/png"}
    kept = client.post("/predict", content=image, headers=headers | {"X-Request-ID": "trace-42"})
    assert kept.headers["x-request-id"] == "trace-42" == kept.json()["request_id"]
    made = client.post("/predict", content=image, headers=headers)
    assert len(made.headers["x-request-id"]) == 32  # a new uuid4, hex
    long = client.get("/v2/health/live", headers={"X-Request-ID": "x" * 500})
    assert long.headers["x-request-id"] == "x" * 128
    with caplog.at_level("INFO", logger="skipfold.access"):
        client.get("/v2/models/nope", headers={"X-Request-ID": "find-me"})
    assert any("find-me GET /v2/models/nope 404" in r.getMessage() for r in caplog.records)


def test_the_body_limit_holds_with_and_without_a_content_length(repo):
    settings = Settings(repository=repo, max_body_bytes=1000)
    with TestClient(create_app(settings)) as client:
        declared = client.post(
            "/predict", content=b"x" * 1001, headers={"content-type": "image/png"}
        )
        assert declared.status_code == 413 and "1,001 bytes" in declared.json()["error"]

        def chunks():  # streamed: no Content-Length, counted as it arrives
            for _ in range(11):
                yield b"x" * 100

        streamed = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
        assert streamed.status_code == 413 and "limit of 1,000 bytes" in streamed.json()["error"]
        bad = client.post(
            "/predict", content=b"x", headers={"content-type": "image/png", "content-length": "x"}
        )
        assert bad.status_code == 400 and "Content-Length" in bad.json()["error"]
