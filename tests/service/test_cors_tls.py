"""CORS (an allow-list, off by default) and TLS on both ports (HTTPS and gRPC)."""

import os
import shutil
import ssl
import subprocess
import sys

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from fastapi.testclient import TestClient

from skipfold.service.app import create_app
from skipfold.service.settings import Settings
from tests.helpers import Server, free_port, sample_images

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_client(repo):
    settings = Settings(repository=repo, intra_op_threads=1, cors_origins=ORIGIN, api_key="k")
    with TestClient(create_app(settings)) as client:
        yield client


def test_preflight_from_an_allowed_origin_needs_no_key(cors_client):
    preflight = cors_client.options(
        "/v2/models/bn/infer",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, inference-header-content-length",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "x-api-key" in allowed and "inference-header-content-length" in allowed
    answer = cors_client.get("/models", headers={"Origin": ORIGIN, "X-API-Key": "k"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    refused = cors_client.get("/models", headers={"Origin": ORIGIN})  # the key is still needed
    assert refused.status_code == 401


def test_other_origins_and_the_default_get_no_cors(cors_client, repo):
    other = cors_client.options(
        "/models",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    with TestClient(create_app(Settings(repository=repo, intra_op_threads=1))) as client:
        plain = client.get("/models", headers={"Origin": ORIGIN})
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_tls_settings_come_in_pairs(repo, tmp_path):
    with pytest.raises(ValueError, match="go together"):
        Settings(repository=repo, ssl_certfile=__file__)
    with pytest.raises(ValueError, match="does not exist"):
        Settings(repository=repo, ssl_certfile=__file__, ssl_keyfile=tmp_path / "missing.pem")


@pytest.mark.e2e
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_https_and_grpc_over_tls(repo, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    grpc_port = free_port()
    server = Server(
        repo, "--grpc-port", str(grpc_port), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)
    )
    try:
        server.wait_ready()
        assert server.url.startswith("https://")
        assert (
            httpx.get(
                f"{server.url}/v2/health/ready", verify=ssl.create_default_context(cafile=cert)
            ).status_code
            == 200
        )
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{server.port}/v2/health/ready", timeout=5)
        client = triton_grpc.InferenceServerClient(
            f"localhost:{grpc_port}", ssl=True, root_certificates=str(cert)
        )
        assert client.is_server_ready()
        tensor = triton_grpc.InferInput("images", [2, 32, 32, 3], "UINT8")
        tensor.set_data_from_numpy(sample_images(2))
        probabilities = client.infer("bn", [tensor]).as_numpy("probabilities")
        np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
        client.close()
        environment = {"SKIPFOLD_PORT": str(server.port), "SKIPFOLD_SSL_CERTFILE": str(cert)}
        check = subprocess.run(
            [sys.executable, "-m", "skipfold.service.healthcheck"],
            env={**os.environ, **environment}, timeout=30, check=False,
        )  # fmt: skip
        assert check.returncode == 0
    finally:
        server.stop()
