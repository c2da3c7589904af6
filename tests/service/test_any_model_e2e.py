"""Any ONNX model, placed in a repository by hand as for Triton, served by a real `skipfold serve`
to tritonclient unchanged, over HTTP (JSON and binary tensors) and gRPC: a float NCHW network
with its config.pbtxt, a model of two inputs (float and int64) and two outputs (float and bool)
with none (completed from the graph), and a float16 model without a batch dimension. Answers are
checked against onnx's reference evaluator, not ONNX Runtime."""

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.helpers import Server, free_port, png, sample_images
from tests.service import any_models

pytestmark = pytest.mark.e2e

MODELS = {
    "nchw": any_models.nchw(),
    "pair": any_models.two_inputs(),
    "fixed": any_models.fixed_fp16(),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("any") / "repo"
    any_models.place(repo, "nchw", MODELS["nchw"], any_models.NCHW_CONFIG)
    any_models.place(repo, "pair", MODELS["pair"])
    any_models.place(repo, "fixed", MODELS["fixed"])
    grpc_port = free_port()
    running = Server(repo, "--grpc-port", str(grpc_port))
    running.wait_ready(timeout=60)
    running.grpc = f"127.0.0.1:{grpc_port}"
    yield running
    running.stop()


def _clients(server):
    http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    grpc = triton_grpc.InferenceServerClient(server.grpc)
    return [(http, triton_http, True), (http, triton_http, False), (grpc, triton_grpc, True)]


def _infer(client, module, binary, model, feeds, outputs):
    inputs = []
    for name, values in feeds.items():
        datatype = {"float32": "FP32", "int64": "INT64", "float16": "FP16"}[values.dtype.name]
        tensor = module.InferInput(name, list(values.shape), datatype)
        if module is triton_http:
            tensor.set_data_from_numpy(values, binary_data=binary)
        else:
            tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    requested = [
        module.InferRequestedOutput(n, binary_data=binary)
        if module is triton_http
        else module.InferRequestedOutput(n)
        for n in outputs
    ]
    result = client.infer(model, inputs, outputs=requested)
    return [result.as_numpy(n) for n in outputs]


def test_every_model_answers_as_the_reference_over_http_and_grpc(server):
    rng = np.random.default_rng(0)
    cases = {
        "nchw": {"pixels": rng.normal(0, 1, (3, 3, 16, 16)).astype(np.float32)},
        "pair": {
            "features": rng.normal(0, 1, (2, 4)).astype(np.float32),
            "offset": np.array([[-3], [5]], dtype=np.int64),
        },
        "fixed": {"h": rng.normal(0, 1, (2, 3)).astype(np.float16)},
    }
    outputs = {"nchw": ["scores"], "pair": ["y", "positive"], "fixed": ["relu"]}
    for model, feeds in cases.items():
        expected = any_models.reference(MODELS[model], feeds)
        for client, module, binary in _clients(server):
            answers = _infer(client, module, binary, model, feeds, outputs[model])
            for got, want in zip(answers, expected, strict=True):
                assert got.dtype == want.dtype and got.shape == want.shape, model
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=model)
    # the bool output is a real comparison of the float one, not all one value
    both = any_models.reference(MODELS["pair"], cases["pair"])[1]
    assert both.any() and not both.all()


def test_metadata_and_config_as_checked_or_completed(server):
    for client, module, _ in _clients(server)[1:]:
        as_json = {} if module is triton_http else {"as_json": True}
        metadata = client.get_model_metadata("pair", **as_json)
        shapes = [
            (t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata["inputs"]
        ]
        assert shapes == [("features", "FP32", [-1, 4]), ("offset", "INT64", [-1, 1])]
        config = client.get_model_config("pair", **as_json)
        config = config.get("config", config)
        assert int(config["max_batch_size"]) == 4  # Triton's default on auto-complete
        assert "dynamic_batching" in config  # on, as Triton's auto-complete turns it
        nchw = client.get_model_config("nchw", **as_json)
        nchw = nchw.get("config", nchw)
        assert int(nchw["max_batch_size"]) == 8 and "dynamic_batching" not in nchw  # as written
        fixed = client.get_model_metadata("fixed", **as_json)
        assert [int(d) for d in fixed["inputs"][0]["shape"]] == [2, 3]  # no batch dimension


def test_typed_grpc_contents_of_each_type_give_the_raw_answers(server):
    """float and int64 in the protocol's typed fields (tritonclient sends raw bytes only),
    through Triton's own generated stub."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    feeds = {"features": np.array([[0.5, -1, 2, 0]], np.float32), "offset": np.array([[2]])}
    request = service_pb2.ModelInferRequest(model_name="pair")
    features = request.inputs.add(name="features", datatype="FP32", shape=[1, 4])
    features.contents.fp32_contents.extend(feeds["features"].reshape(-1).tolist())
    offset = request.inputs.add(name="offset", datatype="INT64", shape=[1, 1])
    offset.contents.int64_contents.extend([2])
    with grpc.insecure_channel(server.grpc) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert [o.datatype for o in response.outputs] == ["FP32", "BOOL"]
    y, positive = any_models.reference(MODELS["pair"], feeds)
    np.testing.assert_allclose(np.frombuffer(response.raw_output_contents[0], "<f4"), y[0], 1e-6)
    assert np.frombuffer(response.raw_output_contents[1], np.bool_).tolist() == positive[0].tolist()


def test_requests_that_do_not_fit_are_refused_with_the_reason(server):
    http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    features = np.zeros((5, 4), np.float32)
    cases = [
        ({"features": features, "offset": np.zeros((5, 1), np.int64)}, "max_batch_size 4"),
        ({"features": features[:2]}, "missing 'offset'"),
        ({"features": features[:2], "offset": np.zeros((3, 1), np.int64)}, "differ in batch size"),
        ({"features": features[:2].astype(np.float16), "offset": np.zeros((2, 1), np.int64)},
         "input 'features' must be FP32, got 'FP16'"),
    ]  # fmt: skip
    for feeds, message in cases:
        with pytest.raises(InferenceServerException, match=message):
            _infer(http, triton_http, True, "pair", feeds, ["y"])
    grpc = triton_grpc.InferenceServerClient(server.grpc)
    with pytest.raises(InferenceServerException, match="shape must be \\[N, 3, 16, 16\\]"):
        _infer(grpc, triton_grpc, True, "nchw", {"pixels": np.zeros((1, 3, 8, 8), np.float32)}, [])


def test_predict_refuses_a_model_that_takes_no_images_naming_the_v2_route(server):
    image = png(sample_images(1)[0])
    response = httpx.post(
        f"{server.url}/predict?model=nchw", content=image, headers={"content-type": "image/png"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "not an image classifier" in error and "POST /v2/models/nchw/infer" in error
    assert "pixels FP32 [-1, 3, 16, 16]" in error
    listed = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()["models"]}
    assert listed["pair"]["input_shape"] is None
    assert [t["name"] for t in listed["pair"]["inputs"]] == ["features", "offset"]
