"""`skipfold serve` as a process: a real uvicorn, Triton's own client, signals, start-up errors."""

import asyncio
import os
import subprocess
import sys
import threading
import time
import zlib

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from tests.helpers import Server, png, sample_images, skipfold
from tests.tiny_models import CLASSES

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(repo):
    server = Server(repo, "--max-batch-size", "8")
    server.wait_ready()
    yield server
    server.stop()


def test_tritonclient_works_unchanged(server, repo):
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("skipinit")
    assert client.get_model_metadata("skipinit")["inputs"][0]["shape"] == [-1, 32, 32, 3]
    assert client.get_model_config("bn")["max_batch_size"] == 64
    images = sample_images(4, seed=11)
    expected = ort.InferenceSession(str(repo / "skipinit" / "1" / "model.onnx")).run(
        None, {"images": images}
    )
    for binary in (True, False):
        tensor = triton.InferInput("images", list(images.shape), "UINT8")
        tensor.set_data_from_numpy(images, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("logits", binary_data=binary),
            triton.InferRequestedOutput("probabilities", binary_data=binary, class_count=3),
        ]
        result = client.infer("skipinit", [tensor], outputs=outputs, model_version="1")
        np.testing.assert_allclose(result.as_numpy("logits"), expected[0], rtol=1e-5, atol=1e-6)
        top = result.as_numpy("probabilities")
        assert top.shape == (4, 3)
        labels = [
            entry.decode().split(":")[2] if binary else entry.split(":")[2] for entry in top[:, 0]
        ]
        assert labels == [CLASSES[i] for i in expected[1].argmax(1)]
    with pytest.raises(triton.InferenceServerException, match="unknown model"):
        client.infer("nope", [tensor])


def test_predict_over_http_and_request_ids(server):
    response = httpx.post(
        f"{server.url}/predict",
        files={"file": ("a.png", png(sample_images(1)[0]))},
        headers={"X-Request-ID": "trace-42"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["request_id"] == "trace-42"


def test_sigterm_turns_readiness_off_finishes_in_flight_requests_and_exits_0(repo, speed_factor):
    # the readiness probe must land inside the delay: both scale with the CPU's speed
    server = Server(repo, "--shutdown-delay", str(1.5 * speed_factor))
    server.wait_ready()
    images = sample_images(64, seed=2)
    tensor = {
        "name": "images",
        "shape": [64, 32, 32, 3],
        "datatype": "UINT8",
        "data": images.tolist(),
    }
    results = []

    def slow_request():  # 64 images sent as JSON: long enough to be in flight at SIGTERM
        r = httpx.post(f"{server.url}/v2/models/bn/infer", json={"inputs": [tensor]}, timeout=60)
        results.append(r.status_code)

    threads = [threading.Thread(target=slow_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.05 * speed_factor)
    server.process.terminate()
    time.sleep(0.3 * speed_factor)
    ready = httpx.get(f"{server.url}/v2/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * 4
    assert server.process.wait(timeout=30) == 0
    server.stop()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "holds no models"),
        ("corrupt", "cannot load it"),
    ],
)
def test_start_up_fails_with_one_clear_line(tmp_path, repo, setup, message):
    target = tmp_path / "repo"
    if setup == "empty":
        target.mkdir()
    if setup == "corrupt":
        (target / "m" / "1").mkdir(parents=True)
        (target / "m" / "config.pbtxt").write_text((repo / "bn" / "config.pbtxt").read_text())
        (target / "m" / "1" / "model.onnx").write_bytes(b"not onnx")
    result = subprocess.run(
        [sys.executable, "-m", "skipfold", "serve", "--repo", str(target), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    output = result.stdout + result.stderr
    assert message in output and "cannot start" in output
    assert "Traceback" not in output


def test_a_missing_repository_is_refused_before_the_server_starts(tmp_path):
    for how in ("flag", "environment"):
        args = ["--repo", str(tmp_path / "missing")] if how == "flag" else []
        env = {**os.environ, "SKIPFOLD_REPOSITORY": str(tmp_path / "missing")}
        result = skipfold("serve", *args, "--port", "0", timeout=60, env=env)
        assert result.returncode == 2, how
        assert "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1


def test_device_cuda_without_a_gpu_fails_at_start(repo):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA execution provider")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "skipfold",
            "serve",
            "--repo",
            str(repo),
            "--device",
            "cuda",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "onnxruntime-gpu" in result.stdout + result.stderr


def test_the_serving_path_never_imports_torch(repo):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
        "from fastapi.testclient import TestClient\n"
        "from skipfold.service.app import create_app\n"
        "from skipfold.service.settings import Settings\n"
        "import skipfold.service.cli, skipfold.service.server, skipfold.bench.run\n"
        f"with TestClient(create_app(Settings(repository={str(repo)!r}))) as c:\n"
        "    assert c.get('/models').status_code == 200\n"
        "from skipfold.cli import build_parser\n"
        "build_parser('serve')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_every_endpoint_and_error_case_over_real_http(server, repo):
    url = server.url
    image = sample_images(1, seed=21)[0]
    good = png(image)
    get = {
        "/healthz": 200,
        "/readyz": 200,
        "/v2": 200,
        "/v2/health/live": 200,
        "/v2/health/ready": 200,
        "/v2/models/bn": 200,
        "/v2/models/bn/versions/2": 200,
        "/v2/models/bn/ready": 200,
        "/v2/models/bn/config": 200,
        "/models": 200,
        "/metrics": 200,
        "/v2/models/nope": 404,
        "/nothing-here": 404,
    }
    for path, status in get.items():
        response = httpx.get(url + path)
        assert response.status_code == status, path
        if status != 200:
            assert "error" in response.json()

    bomb = bytearray(png(np.zeros((1, 1, 3), np.uint8)))
    bomb[16:24] = (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big")  # IHDR width, height
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")  # a valid header again
    raw = {"content-type": "image/png"}
    cases = [
        ({"content": good[: len(good) // 2], "headers": raw}, 400),  # truncated PNG
        ({"content": b"", "headers": raw}, 400),  # zero bytes
        ({"files": {"file": ("notes.txt", b"just some text\n", "text/plain")}}, 415),
        ({"content": bytes(bomb), "headers": raw}, 413),  # declares 20000x20000 pixels
        ({"content": good, "headers": {"content-type": "application/json"}}, 415),
        ({"content": b"\x00" * (11 * 1024 * 1024), "headers": raw}, 413),  # over 10 MB
    ]
    for kwargs, status in cases:
        response = httpx.post(f"{url}/predict", timeout=30, **kwargs)
        assert response.status_code == status, (kwargs.get("headers"), response.text)
        assert set(response.json()) == {"error"} and "Traceback" not in response.text
    assert httpx.post(f"{url}/predict?model=nope", content=good, headers=raw).status_code == 404
    tensor = {"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8", "data": [0] * 3072}
    for change in ({"shape": [1, 3, 32, 32]}, {"datatype": "FP32"}):
        response = httpx.post(f"{url}/v2/models/bn/infer", json={"inputs": [tensor | change]})
        assert response.status_code == 400 and "error" in response.json()

    # /predict and /v2 infer agree with the ONNX model run directly on the same pixels
    direct = ort.InferenceSession(str(repo / "bn" / "2" / "model.onnx")).run(
        ["probabilities"], {"images": image[None]}
    )[0][0]
    predicted = httpx.post(f"{url}/predict?top_k=10", content=good, headers=raw).json()
    by_index = {p["index"]: p["probability"] for p in predicted["results"][0]["predictions"]}
    np.testing.assert_allclose([by_index[i] for i in range(10)], direct, rtol=1e-6, atol=1e-9)
    tensor["data"] = image.reshape(-1).tolist()
    v2 = httpx.post(
        f"{url}/v2/models/bn/infer",
        json={"inputs": [tensor], "outputs": [{"name": "probabilities"}]},
    ).json()
    np.testing.assert_allclose(v2["outputs"][0]["data"], direct, rtol=1e-6, atol=1e-9)


def test_64_concurrent_requests_are_all_answered_correctly_and_it_still_serves(server, repo):
    images = sample_images(64, seed=33)
    expected = ort.InferenceSession(str(repo / "skipinit" / "1" / "model.onnx")).run(
        ["probabilities"], {"images": images}
    )[0]

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/predict?model=skipinit&top_k=1",
                        content=png(img),
                        headers={"content-type": "image/png"},
                    )
                    for img in images
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 64
    for response, row in zip(responses, expected, strict=True):
        top = response.json()["results"][0]["predictions"][0]
        assert top["index"] == int(row.argmax())
        assert top["probability"] == pytest.approx(float(row.max()), rel=1e-5)
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    again = httpx.post(
        f"{server.url}/predict", content=png(images[0]), headers={"content-type": "image/png"}
    )
    assert again.status_code == 200


def test_healthcheck_module_follows_readiness(server):
    env = {**os.environ, "SKIPFOLD_PORT": str(server.port)}
    command = [sys.executable, "-m", "skipfold.service.healthcheck"]
    ready = subprocess.run(command, env=env, timeout=30)
    assert ready.returncode == 0
    env["SKIPFOLD_PORT"] = "1"  # nothing listens there
    down = subprocess.run(command, env=env, timeout=30)
    assert down.returncode == 1
