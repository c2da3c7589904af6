"""Each script of scripts/experiments still runs, on the tiny models (the figures they print in
docs/results.md came from the real ones). Each asserts the shape of what it prints: a script
that no longer runs or prints nothing fails here."""

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from skipfold.common.shapes import class_samples
from tests.helpers import Server, free_port, png
from tests.service.test_page import needs_chromium

pytestmark = pytest.mark.e2e
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "experiments"


def run(script: str, *args: object, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def server(repo):
    grpc_port = free_port()
    server = Server(repo, "--grpc-port", str(grpc_port))
    server.grpc_port = grpc_port
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "star.png"
    path.write_bytes(png(dict(class_samples())["star"]))
    return path


def test_the_http_ab_script(repo, server, image):
    out = run("http_ab.py", repo / "bn" / "1" / "model.onnx", image, 5,
              f"serve={server.url}/predict?model=bn")  # fmt: skip
    assert [line.split()[0] for line in out.splitlines()] == ["in-process", "serve"]


def test_the_grpc_vs_http_script(server):
    out = run("grpc_vs_http.py", "127.0.0.1", server.port, server.grpc_port, "bn", 2)
    assert out.startswith("http: p50 ") and "\ngrpc: p50 " in out and "grpc / http p50: " in out


def test_the_served_accuracy_script(server, tmp_path):
    for name, sample in class_samples()[:3]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.png").write_bytes(png(sample))
    out = run("served_accuracy.py", server.url, tmp_path, "bn", "skipinit")
    assert out.startswith("3 images from") and "top-1 agreement bn / skipinit: " in out


def test_the_engine_accuracy_script(repo):
    pytest.importorskip("openvino", reason="the script compares OpenVINO: skipfold[openvino]")
    out = run("engine_accuracy.py", repo, "shapes")
    assert out.startswith("2000 test images of shapes")
    assert {line.split(" | ")[0] for line in out.splitlines()[3:]} >= {"| bn", "| skipinit"}


def test_the_ep_vs_runtime_script(repo):
    pytest.importorskip("openvino", reason="the script compares OpenVINO: skipfold[openvino]")
    model = repo / "bn" / "1" / "model.onnx"
    out = run("ep_vs_runtime.py", model, model, 2)
    assert "| ORT CPU fp32 | " in out and "| OpenVINO fp32 | " in out


def test_the_asgi_floor_script(repo, image):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPTS / "asgi_floor.py"),
            str(repo / "bn" / "1" / "model.onnx"),
            str(port),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/", content=image.read_bytes())
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        assert answer.status_code == 200 and 0 <= answer.json()["index"] < 10
    finally:
        process.terminate()
        process.wait(timeout=30)


@needs_chromium
def test_the_page_screenshot_script(server, tmp_path):
    out = tmp_path / "page.png"
    run("page_screenshot.py", server.url, out, timeout=600)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
