"""Malformed requests, as a hostile or careless client sends them: each one a 4xx that says what
is wrong, and not one line in the server's error log (the in-process app on real models)."""

import json
import logging

import pytest

from tests.helpers import png, sample_images

TENSOR = {"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8", "data": [0] * 3072}
INFER = "/v2/models/bn/infer"


def body_with(**changes) -> dict:
    return {"inputs": [TENSOR]} | changes


def tensor_with(**changes) -> dict:
    return {"inputs": [TENSOR | changes]}


def raw(text: str) -> dict:
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


V2_CASES = {
    # values the tensor's datatype cannot hold
    "data Infinity": (raw(json.dumps(tensor_with(data=[float("inf")] * 3072))), "integers"),
    "data 1e400": (raw(json.dumps(tensor_with()).replace("[0,", "[1e400,")), "integers"),
    "data 10**30": (tensor_with(data=[10**30] * 3072), "integers"),
    "data floats": (tensor_with(data=[0.5] * 3072), "integers"),
    "data strings": (tensor_with(data=["0"] * 3072), "integers"),
    "data ragged": (tensor_with(data=[[0, 0], [0]]), "evenly nested"),
    "data booleans": (tensor_with(data=[True] * 3072), "integers"),
    "data a number": (tensor_with(data=5), "data"),
    # integer size and nesting depth, bounded while parsing
    "id 5,000 digits": (raw('{"id": ' + "9" * 5000 + ', "inputs": []}'), "number out of range"),
    "id an integer": (body_with(id=5), "id"),
    "nested 100,000 deep": (raw('{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}"), "recursion"),
    # the shape of the body
    "outputs 5": (body_with(outputs=5), "outputs"),
    "outputs a string": (body_with(outputs="probabilities"), "outputs"),
    "inputs empty": (body_with(inputs=[]), "inputs"),
    "inputs a string": (body_with(inputs="images"), "inputs"),
    "not an object": (raw("[1, 2]"), "should be an object"),
    "not JSON": (raw("{'inputs': 1}"), "Invalid JSON"),
    "parameters 100 of them": (body_with(parameters={f"p{i}": i for i in range(100)}), "at most"),
    "unknown output": (body_with(outputs=[{"name": "scores"}]), "unknown output 'scores'"),
    "shape negative": (tensor_with(shape=[-1, 32, 32, 3]), "shape"),
    "shape strings": (tensor_with(shape=["1", 32, 32, 3]), "shape"),
    "datatype unknown": (tensor_with(datatype="UINT9"), "datatype"),
    # parameters
    "parameters a list": (body_with(parameters=[1]), "parameters"),
    "parameters a string": (body_with(parameters="binary"), "parameters"),
    "parameter a list": (body_with(parameters={"x": [1]}), "parameter 'x'"),
    "binary_data_output a string": (
        body_with(parameters={"binary_data_output": "yes"}),
        "binary_data_output",
    ),
    "tensor parameters a list": (tensor_with(parameters=[]), "parameters"),
    "binary_data_size a string": (tensor_with(parameters={"binary_data_size": "3072"}), "binary"),
    "binary_data_size a float": (tensor_with(parameters={"binary_data_size": 3072.0}), "binary"),
    "classification -1": (
        body_with(outputs=[{"name": "probabilities", "parameters": {"classification": -1}}]),
        "classification",
    ),
    "classification a string": (
        body_with(outputs=[{"name": "probabilities", "parameters": {"classification": "3"}}]),
        "classification",
    ),
}


@pytest.mark.parametrize("case", V2_CASES)
def test_a_malformed_v2_request_is_a_specific_400_and_logs_no_error(client, caplog, case):
    request, message = V2_CASES[case]
    kwargs = request if "content" in request else {"json": request}
    with caplog.at_level(logging.WARNING, logger="skipfold"):
        response = client.post(INFER, **kwargs)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("length", ["²".encode(), "-1", "1e3", "9" * 5000, "99999"])
def test_a_bad_binary_header_length_is_400(client, length):
    response = client.post(
        INFER,
        content=json.dumps(body_with()).encode(),
        headers={"Inference-Header-Content-Length": length},
    )
    assert response.status_code == 400, response.text
    assert "Inference-Header-Content-Length" in response.json()["error"]


@pytest.mark.parametrize("parameter", ["top_k", "version"])
@pytest.mark.parametrize("value", ["²", "٣", "0", "-1", "1.5", "9" * 5000, "x"])
def test_a_bad_query_number_is_400(client, parameter, value, caplog):
    with caplog.at_level(logging.WARNING, logger="skipfold"):
        response = client.post(
            f"/predict?model=bn&{parameter}={value}",
            content=png(sample_images(1)[0]),
            headers={"Content-Type": "image/png"},
        )
    assert response.status_code == 400, response.text
    assert parameter in response.json()["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_good_request_still_reads_every_typed_field(client):
    request = {
        "id": "r1",
        "model_name": "bn",  # KServe's client sends it; the protocol does not define it
        "parameters": {"binary_data_output": False, "client_tag": "x"},
        "inputs": [TENSOR | {"parameters": {"other": 1}}],
        "outputs": [
            {"name": "probabilities", "parameters": {"classification": 3}},
            {"name": "probabilities", "parameters": {"classification": 0}},  # 0: off, as Triton
        ],
    }
    response = client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "r1"
    assert [o["shape"] for o in body["outputs"]] == [[1, 3], [1, 10]]


def test_the_v2_infer_body_is_in_the_openapi_spec(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v2/models/{name}/infer"]["post"]
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert reference == "#/components/schemas/InferRequest"
    schemas = spec["components"]["schemas"]
    assert {"InferRequest", "InferInput", "RequestedOutput", "OutputParameters"} <= set(schemas)
    assert schemas["InferRequest"]["properties"]["inputs"]["minItems"] == 1
    name = next(p for p in operation["parameters"] if p["name"] == "name")
    assert name["schema"]["enum"] == sorted(client.app.state.registry.models)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/predict", "POST"), ("PUT", INFER, "POST"), ("POST", "/v2/health/live", "GET")],
)
def test_a_wrong_method_is_405_with_allow(client, method, path, allowed):
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert method in response.json()["error"]
