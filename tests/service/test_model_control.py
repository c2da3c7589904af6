"""Model control against `skipfold serve` as a process, with clients sending throughout: new
versions served without a failed request (poll), models loaded and unloaded through Triton's
repository API without disturbing the others (explicit), and a corrupt version that leaves the
old one serving."""

import json
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from fastapi.testclient import TestClient

from skipfold.formats.model_repository import ModelRepository
from skipfold.service.app import create_app
from skipfold.service.settings import Settings
from tests.helpers import Server, free_port, sample_images
from tests.tiny_models import CLASSES, card, model_bytes, tiny_repository

CLIENTS = 8
POLL_S = 0.5


def _infer_body(images: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A v2 infer request with the binary tensor data extension."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "datatype": "UINT8",
                    "shape": list(images.shape),
                    "parameters": {"binary_data_size": images.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities"}],
        }
    ).encode()
    return header + images.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


class Clients:
    """CLIENTS threads, each sending infer requests for its model until stopped; every answer
    is recorded as (model, status, version, seconds since start)."""

    def __init__(self, url: str, models: list[str]) -> None:
        self.url, self.started = url, time.monotonic()
        self.answers: list[tuple[str, int, str, float]] = []
        self.stopping = threading.Event()
        body, headers = _infer_body(sample_images(1, seed=5))
        self.threads = [
            threading.Thread(target=self._send, args=(models[i % len(models)], body, headers))
            for i in range(CLIENTS)
        ]
        for thread in self.threads:
            thread.start()

    def _send(self, model: str, body: bytes, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stopping.is_set():
                response = client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
                version = response.json().get("model_version", "") if response.is_success else ""
                elapsed = time.monotonic() - self.started
                self.answers.append((model, response.status_code, version, elapsed))
                time.sleep(0.005)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def since(self, moment: float, model: str | None = None) -> list[tuple[str, int, str, float]]:
        return [a for a in self.answers if a[3] >= moment and (model is None or a[0] == model)]

    def now(self) -> float:
        return time.monotonic() - self.started

    def wait_for(self, predicate, timeout: float = 30) -> float:
        """Seconds until an answer satisfies `predicate`."""
        begun = time.monotonic()
        while time.monotonic() - begun < timeout:
            if any(predicate(a) for a in list(self.answers)):
                return time.monotonic() - begun
            time.sleep(0.02)
        raise TimeoutError("no answer satisfied the condition")


def _index(url: str) -> dict[tuple[str, str], dict]:
    rows = httpx.post(f"{url}/v2/repository/index").json()
    return {(row["name"], row["version"]): row for row in rows}


def _metric(url: str, name: str, model: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(rf'^{name}_total{{model="{model}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def repository(tmp_path) -> Path:
    return tiny_repository(tmp_path / "repo")


@pytest.mark.e2e
def test_poll_serves_a_new_version_without_a_failed_request(repository):
    server = Server(repository, "--model-control", "poll", "--poll-interval", str(POLL_S))
    server.wait_ready()
    clients = Clients(server.url, ["bn", "skipinit"])
    try:
        clients.wait_for(lambda a: a[0] == "bn" and a[2] == "2")
        published = clients.now()
        version, _ = ModelRepository(repository).publish(
            "bn", model_bytes(99, card("bn")), classes=CLASSES, input_size=(32, 32),
            max_batch_size=64,
        )  # fmt: skip
        assert version == 3
        waited = clients.wait_for(lambda a: a[0] == "bn" and a[2] == "3")
        # served within the poll interval plus its load and warm-up (a tiny model: well
        # under a second), with room for a busy 2-core machine
        assert waited < POLL_S + 10.0, waited  # a poll, the load and warm-up, a busy machine
        print(f"version 3 served {waited:.2f} s after it was published")
        time.sleep(3 * POLL_S)
        settled = clients.now()
        time.sleep(0.5)
        assert {a[2] for a in clients.since(settled, "bn")} == {"3"}  # the old one retired
        index = _index(server.url)
        assert index[("bn", "3")]["state"] == "READY"
        assert index[("bn", "2")] == {
            "name": "bn", "version": "2", "state": "UNAVAILABLE", "reason": "newer version"
        }  # fmt: skip

        # a corrupt new version: the old one keeps serving, the index says why
        staging = repository / "bn" / ".4.tmp"  # renamed into place, as skipfold export does
        staging.mkdir()
        (staging / "model.onnx").write_bytes(b"this is not an ONNX model")
        staging.rename(repository / "bn" / "4")
        deadline = time.monotonic() + 10
        while _index(server.url).get(("bn", "4"), {}).get("reason") in (None, "not loaded", ""):
            assert time.monotonic() < deadline, "the corrupt version never reached the index"
            time.sleep(0.1)
        time.sleep(3 * POLL_S)  # several polls: the failure is not retried nor disturbing
        index = _index(server.url)
        assert index[("bn", "4")]["state"] == "UNAVAILABLE"
        assert "ONNX Runtime cannot load it" in index[("bn", "4")]["reason"]
        assert index[("bn", "3")]["state"] == "READY"
        assert _metric(server.url, "skipfold_model_load_failures", "bn") == 1.0
        assert {a[2] for a in clients.since(clients.now() - 1.0, "bn")} == {"3"}
    finally:
        clients.stop()
        output = server.stop()
    assert clients.answers and all(a[1] == 200 for a in clients.answers), [
        a for a in clients.answers if a[1] != 200
    ][:3]
    assert published > 0 and len(clients.since(published)) > 8 * CLIENTS  # sent throughout
    assert output.count("model bn version 4 failed to load") == 1


@pytest.mark.e2e
def test_explicit_load_and_unload_leave_the_other_models_alone(repository):
    grpc_port = free_port()
    server = Server(repository, "--model-control", "explicit", "--grpc-port", str(grpc_port))
    server.wait_ready()
    http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    grpc = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    clients = Clients(server.url, ["skipinit", "bn-unfolded"])
    try:
        clients.wait_for(lambda a: a[0] == "bn-unfolded")
        started = clients.now()
        for client in (http, grpc):  # Triton's repository API, over HTTP and over gRPC
            client.unload_model("bn")
            assert httpx.get(f"{server.url}/v2/models/bn").status_code == 404
            assert _index(server.url)[("bn", "2")]["reason"] == "unloaded"
            client.load_model("bn")
            assert client.is_model_ready("bn")
            assert _index(server.url)[("bn", "2")]["state"] == "READY"
        index = grpc.get_model_repository_index(as_json=True)["models"]
        assert {"name": "bn", "version": "2", "state": "READY"} in index

        # a corrupt version refused at load: the version serving stays, the caller is told
        staging = repository / "skipinit" / ".2.tmp"
        staging.mkdir()
        (staging / "model.onnx").write_bytes(b"\x08\x07garbage")
        staging.rename(repository / "skipinit" / "2")
        with pytest.raises(triton_http.InferenceServerException, match="failed to load 'skipinit'"):
            http.load_model("skipinit")
        assert _index(server.url)[("skipinit", "2")]["state"] == "UNAVAILABLE"
        assert http.get_model_metadata("skipinit")["versions"] == ["1"]
        time.sleep(0.5)
    finally:
        clients.stop()
        grpc.close()
        server.stop()
    during = clients.since(started)
    assert len(during) > CLIENTS and all(a[1] == 200 for a in during), [
        a for a in during if a[1] != 200
    ][:3]
    assert {a[2] for a in during if a[0] == "skipinit"} == {"1"}


@pytest.mark.e2e
def test_load_and_unload_need_explicit_mode_and_the_api_key(repository):
    server = Server(repository, env={"SKIPFOLD_API_KEY": "k"})
    server.wait_ready()
    try:
        refused = httpx.post(f"{server.url}/v2/repository/models/bn/unload")
        assert refused.status_code == 401
        keyed = {"X-API-Key": "k"}
        response = httpx.post(f"{server.url}/v2/repository/models/bn/unload", headers=keyed)
        assert response.status_code == 400
        assert "--model-control explicit" in response.json()["error"]
        index = httpx.post(f"{server.url}/v2/repository/index", headers=keyed, json={"ready": True})
        assert {(r["name"], r["state"]) for r in index.json()} >= {("bn", "READY")}
        assert httpx.get(f"{server.url}/v2/models/bn", headers=keyed).status_code == 200
    finally:
        server.stop()


def test_a_failed_reload_keeps_the_version_serving_and_the_default_moves(repository):
    """In process: bn pinned to versions 1 and 2; version 2's file breaks on disk, and an
    explicit reload of bn replaces version 1 and keeps the old version 2 serving. Unloading the
    default model sends requests that name none to another model."""
    settings = Settings(
        repository=repository, intra_op_threads=1, models="bn:1:2,skipinit",
        model_control="explicit",
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        registry = client.app.state.registry
        before = dict(registry.models["bn"])
        (repository / "bn" / "2" / "model.onnx").write_bytes(b"broken on disk, once loaded")
        response = client.post("/v2/repository/models/bn/load")
        assert response.status_code == 400
        assert "failed to load 'bn'" in response.json()["error"]
        after = registry.models["bn"]
        assert after[1] is not before[1] and after[2] is before[2]  # 1 reloaded, 2 kept
        assert not after[2].retired and before[1].retired
        assert client.post("/v2/repository/models/bn/unload").status_code == 200
        assert registry.default == "skipinit"
        body, headers = _infer_body(sample_images(1))
        assert client.post("/v2/models/skipinit/infer", content=body, headers=headers).is_success
        answer = client.post("/predict", content=_png(), headers={"Content-Type": "image/png"})
        assert answer.status_code == 200 and answer.json()["model"] == "skipinit"


def _png() -> bytes:
    from tests.helpers import png

    return png(sample_images(1)[0])
