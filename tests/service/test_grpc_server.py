"""The Open Inference Protocol over gRPC, against `skipfold serve` as a process, with Triton's own
client (tritonclient.grpc, unchanged) and Triton's own generated messages for what that client
cannot send (typed tensor contents)."""

import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.helpers import Server, free_port, sample_images, skipfold

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(repo):
    grpc_port = free_port()
    server = Server(repo, "--grpc-port", str(grpc_port), "--max-batch-size", "8")
    server.grpc = f"127.0.0.1:{grpc_port}"
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clients(server):
    grpc_client = triton_grpc.InferenceServerClient(server.grpc)
    http_client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    yield grpc_client, http_client
    grpc_client.close()
    http_client.close()


def _grpc_infer(client, model, images, outputs, version=""):
    tensor = triton_grpc.InferInput("images", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    return client.infer(model, [tensor], outputs=outputs, model_version=version)


def _http_infer(client, model, images, outputs):
    tensor = triton_http.InferInput("images", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images, binary_data=True)
    return client.infer(model, [tensor], outputs=outputs)


def test_metadata_and_config_match_http(clients):
    grpc_client, http_client = clients
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("skipinit")
    server = grpc_client.get_server_metadata(as_json=True)
    assert server["name"] == "skipfold"
    assert {"classification", "model_repository"} <= set(server["extensions"])
    for model in ("bn", "skipinit"):
        metadata = grpc_client.get_model_metadata(model, as_json=True)
        over_http = http_client.get_model_metadata(model)
        assert metadata["versions"] == over_http["versions"]
        assert [i["name"] for i in metadata["inputs"]] == ["images"]
        assert [int(d) for d in metadata["inputs"][0]["shape"]] == [-1, 32, 32, 3]
        assert [o["name"] for o in metadata["outputs"]] == ["logits", "probabilities"]
        config = grpc_client.get_model_config(model, as_json=True)["config"]
        http_config = http_client.get_model_config(model)
        assert config["max_batch_size"] == http_config["max_batch_size"] == 64
        assert config["input"][0]["format"] == "FORMAT_NHWC"
        assert config["input"][0]["data_type"] == "TYPE_UINT8"
        assert [int(d) for d in config["input"][0]["dims"]] == [32, 32, 3]
        assert (
            config["parameters"]["variant"]["string_value"]
            == http_config["parameters"]["variant"]["string_value"]
        )


def test_binary_infer_and_classification_give_http_s_probabilities(clients):
    grpc_client, http_client = clients
    images = sample_images(5, seed=21)
    for model in ("bn", "skipinit"):
        over_grpc = _grpc_infer(
            grpc_client,
            model,
            images,
            [
                triton_grpc.InferRequestedOutput("probabilities"),
                triton_grpc.InferRequestedOutput("logits", class_count=3),
            ],
        )
        over_http = _http_infer(
            http_client,
            model,
            images,
            [
                triton_http.InferRequestedOutput("probabilities", binary_data=True),
                triton_http.InferRequestedOutput("logits", binary_data=True, class_count=3),
            ],
        )
        probabilities = over_grpc.as_numpy("probabilities")
        assert probabilities.shape == (5, 10) and probabilities.dtype == np.float32
        np.testing.assert_array_equal(probabilities, over_http.as_numpy("probabilities"))
        top = over_grpc.as_numpy("logits")
        assert top.shape == (5, 3)
        assert top.tolist() == over_http.as_numpy("logits").tolist()  # b"score:index:label"
        assert [int(row[0].split(b":")[1]) for row in top] == list(probabilities.argmax(1))
    response = over_grpc.get_response()
    assert response.model_name == "skipinit" and response.model_version == "1"


def test_typed_contents_and_request_id(server, clients):
    """The protocol's typed contents (UINT8 in uint_contents), which tritonclient never sends,
    through Triton's own generated stub: the same probabilities as raw bytes."""
    import grpc

    grpc_client, _ = clients
    images = sample_images(2, seed=22)
    request = service_pb2.ModelInferRequest(model_name="bn", id="typed-1")
    tensor = request.inputs.add(name="images", datatype="UINT8", shape=list(images.shape))
    tensor.contents.uint_contents.extend(images.reshape(-1).tolist())
    request.outputs.add(name="probabilities")
    with grpc.insecure_channel(server.grpc) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert response.id == "typed-1" and response.outputs[0].datatype == "FP32"
    typed = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 10)
    wanted = [triton_grpc.InferRequestedOutput("probabilities")]
    raw = _grpc_infer(grpc_client, "bn", images, wanted)
    np.testing.assert_array_equal(typed, raw.as_numpy("probabilities"))


@pytest.mark.parametrize(
    ("model", "shape", "datatype", "message"),
    [
        ("nope", [1, 32, 32, 3], "UINT8", "unknown model 'nope'"),
        ("bn", [1, 16, 16, 3], "UINT8", "input 'images' shape must be [N, 32, 32, 3]"),
        ("bn", [65, 32, 32, 3], "UINT8", "batch of 65 exceeds the max_batch_size 64 of model 'bn'"),
    ],
)
def test_errors_are_status_codes_with_http_s_messages(clients, model, shape, datatype, message):
    grpc_client, _ = clients
    images = np.zeros(shape, dtype=np.uint8)
    with pytest.raises(triton_grpc.InferenceServerException) as caught:
        _grpc_infer(grpc_client, model, images, None)
    expected = "StatusCode.NOT_FOUND" if model == "nope" else "StatusCode.INVALID_ARGUMENT"
    assert caught.value.status() == expected
    assert message in caught.value.message()
    assert "Traceback" not in caught.value.message()


def test_wrong_datatype_and_byte_count(server):
    import grpc

    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="bn")
        request.inputs.add(name="images", datatype="FP32", shape=[1, 32, 32, 3])
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "must be UINT8, got 'FP32'" in caught.value.details()
        request = service_pb2.ModelInferRequest(model_name="bn", raw_input_contents=[b"\0" * 10])
        request.inputs.add(name="images", datatype="UINT8", shape=[1, 32, 32, 3])
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request)
        assert (
            "raw input 'images' holds 10 bytes; shape [1, 32, 32, 3] of UINT8 needs 3072"
            in caught.value.details()
        )


def test_metrics_count_grpc_requests(server, clients):
    grpc_client, _ = clients
    before = httpx.get(f"{server.url}/metrics").text
    _grpc_infer(grpc_client, "skipinit", sample_images(1), None)
    after = httpx.get(f"{server.url}/metrics").text

    def count(text: str) -> float:
        key = 'skipfold_requests_total{endpoint="grpc_infer",model="skipinit",status="OK"}'
        lines = [line for line in text.splitlines() if line.startswith(key)]
        return float(lines[0].split()[-1]) if lines else 0.0

    assert count(after) == count(before) + 1


def test_api_key_and_message_size_limit(repo):
    grpc_port = free_port()
    server = Server(
        repo, "--grpc-port", str(grpc_port), "--max-body-bytes", "20000", env={
            "SKIPFOLD_API_KEY": "s3cret"
        },
    )  # fmt: skip
    try:
        server.wait_ready()
        address = f"127.0.0.1:{grpc_port}"
        anonymous = triton_grpc.InferenceServerClient(address)
        assert anonymous.is_server_ready()  # open, as /v2/health/ready
        with pytest.raises(triton_grpc.InferenceServerException) as caught:
            anonymous.get_model_metadata("bn")
        assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
        assert "API key" in caught.value.message()
        keyed = {"x-api-key": "s3cret"}
        assert anonymous.get_model_metadata("bn", headers=keyed).name == "bn"
        tensor = triton_grpc.InferInput("images", [1, 32, 32, 3], "UINT8")
        tensor.set_data_from_numpy(sample_images(1))
        assert anonymous.infer("bn", [tensor], headers=keyed).as_numpy("logits").shape == (1, 10)
        big = triton_grpc.InferInput("images", [8, 32, 32, 3], "UINT8")  # 24,576 bytes
        big.set_data_from_numpy(sample_images(8))
        with pytest.raises(triton_grpc.InferenceServerException) as caught:
            anonymous.infer("bn", [big], headers=keyed)
        assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        anonymous.close()
    finally:
        server.stop()


def test_grpc_port_in_use_is_one_line(repo, server):
    taken = server.grpc.rsplit(":", 1)[1]
    result = skipfold("serve", "--repo", str(repo), "--port", "0", "--grpc-port", taken, timeout=60)
    assert result.returncode != 0
    assert f"gRPC cannot listen on 127.0.0.1:{taken}" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_sigterm_keeps_serving_through_the_delay_then_stops_cleanly(repo):
    """As HTTP: at SIGTERM readiness turns false but calls are answered for the shutdown delay
    (a load balancer needs it to notice); then the server stops and exits 0."""
    import signal
    import threading

    grpc_port = free_port()
    server = Server(repo, "--grpc-port", str(grpc_port), "--shutdown-delay", "2")
    server.wait_ready()
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    answered: list[float] = []  # when each call was answered
    failures: list[tuple[float, Exception]] = []
    stopping = threading.Event()

    def keep_sending() -> None:
        tensor = triton_grpc.InferInput("images", [1, 32, 32, 3], "UINT8")
        tensor.set_data_from_numpy(sample_images(1))
        while not stopping.is_set() and server.process.poll() is None:
            try:
                client.infer("bn", [tensor])
                answered.append(time.monotonic())
            except triton_grpc.InferenceServerException as exc:
                failures.append((time.monotonic(), exc))
                return

    thread = threading.Thread(target=keep_sending)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(answered) < 5:
            assert time.monotonic() < deadline and thread.is_alive(), failures
            time.sleep(0.01)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        ready_after = client.is_server_ready()
        assert server.process.wait(timeout=40) == 0
    finally:
        stopping.set()
        thread.join(timeout=30)
        server.stop()
    assert not ready_after
    during_delay = [t for t in answered if signalled + 0.5 < t < signalled + 1.5]
    assert during_delay, "no call answered during the shutdown delay"
    assert all(t > signalled + 1.5 for t, _ in failures), failures  # refused only once stopping
