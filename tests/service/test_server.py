"""`skipfold serve` as a process: a real uvicorn, Triton's own client, signals, start-up errors."""

import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from tests.service.conftest import Server, png, sample_images


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
        assert labels == [f"class{i}" for i in expected[1].argmax(1)]
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


def test_sigterm_turns_readiness_off_finishes_in_flight_requests_and_exits_0(repo):
    server = Server(repo, "--shutdown-delay", "1.5")
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

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.05)
    server.process.terminate()
    time.sleep(0.3)
    ready = httpx.get(f"{server.url}/v2/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    thread.join(timeout=60)
    assert results == [200]
    assert server.process.wait(timeout=30) == 0
    server.stop()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
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
        "from service.app import create_app\n"
        "from service.settings import Settings\n"
        "import service.cli, service.server\n"
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
