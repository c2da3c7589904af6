"""The Open Inference Protocol (KServe v2) over REST, as Triton Inference Server speaks it.

Health, server and model metadata, readiness, and inference with JSON tensors or the binary
tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw
tensor bytes), plus Triton's classification extension (`"classification": k` on an output
returns the top k as "score:index:label" strings) and GET .../config. Existing clients
(tritonclient.http, KServe's) work unchanged.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from skipfold import __version__
from skipfold.service.errors import ApiError
from skipfold.service.registry import ServedModel

router = APIRouter(prefix="/v2")

EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration"]
DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8"}


@router.get("")
async def server_metadata() -> dict:
    return {"name": "skipfold", "version": __version__, "extensions": EXTENSIONS}


@router.get("/health/live")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    is_ready = bool(request.app.state.ready)
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


def _tensor_metadata(name: str, datatype: str, dims: list[int]) -> dict:
    return {"name": name, "datatype": datatype, "shape": [-1, *dims]}


def _model_metadata(request: Request, served: ServedModel) -> dict:
    versions = request.app.state.registry.models[served.name]
    classes = len(served.classes)
    return {
        "name": served.name,
        "versions": [str(v) for v in sorted(versions)],
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor_metadata(served.input_name, "UINT8", [*served.input_size, 3])],
        "outputs": [_tensor_metadata(n, "FP32", [classes]) for n in served.output_names],
    }


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> dict:
    return _model_metadata(request, request.app.state.registry.get(name, version))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> JSONResponse:
    served = request.app.state.registry.get(name, version)
    is_ready = bool(request.app.state.ready)
    return JSONResponse(
        {"name": served.name, "version": str(served.version), "ready": is_ready},
        status_code=200 if is_ready else 503,
    )


@router.get("/models/{name}/config")
@router.get("/models/{name}/versions/{version}/config")
async def model_config(request: Request, name: str, version: str | None = None) -> dict:
    served = request.app.state.registry.get(name, version)
    classes = len(served.classes)
    return {
        "name": served.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": served.max_batch_size,
        "input": [
            {
                "name": served.input_name,
                "data_type": "TYPE_UINT8",
                "format": "FORMAT_NHWC",
                "dims": [*served.input_size, 3],
            }
        ],
        "output": [
            {"name": n, "data_type": "TYPE_FP32", "dims": [classes]} for n in served.output_names
        ],
        "parameters": {k: {"string_value": v} for k, v in served.metadata.items()},
    }


def _parse_request(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    binary = b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ApiError(400, "invalid Inference-Header-Content-Length header") from None
        if not 0 <= length <= len(body):
            raise ApiError(400, "Inference-Header-Content-Length exceeds the body")
        body, binary = body[:length], body[length:]
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise ApiError(400, "the inference request needs an 'inputs' list")
    return payload, binary


def _input_array(served: ServedModel, payload: dict, binary: bytes) -> np.ndarray:
    inputs = payload["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError(400, f"model {served.name!r} takes exactly one input, {served.input_name!r}")
    tensor = inputs[0]
    if tensor.get("name") != served.input_name:
        raise ApiError(
            400,
            f"unknown input {tensor.get('name')!r}; model {served.name!r} takes "
            f"{served.input_name!r}",
        )
    if tensor.get("datatype") != "UINT8":
        raise ApiError(
            400, f"input {served.input_name!r} must be UINT8, got {tensor.get('datatype')!r}"
        )
    shape = tensor.get("shape")
    expected = [*served.input_size, 3]
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[1:] != expected
        or shape[0] < 1
    ):
        raise ApiError(
            400, f"input shape must be [N, {', '.join(map(str, expected))}], got {shape}"
        )
    if served.max_batch_size and shape[0] > served.max_batch_size:
        raise ApiError(
            400,
            f"batch of {shape[0]} exceeds model {served.name!r}'s max_batch_size "
            f"{served.max_batch_size}",
        )
    count = int(np.prod(shape))
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if size != count or len(binary) < size:
            raise ApiError(
                400,
                f"binary input holds {min(size, len(binary))} bytes; shape {shape} needs {count}",
            )
        return np.frombuffer(binary[:size], dtype=np.uint8).reshape(shape)
    data = tensor.get("data")
    if data is None:
        raise ApiError(400, f"input {served.input_name!r} has neither 'data' nor binary data")
    try:
        values = np.asarray(data, dtype=np.int64).reshape(-1)
    except (ValueError, TypeError):
        raise ApiError(400, "input 'data' must be a (nested) list of integers") from None
    if values.size != count:
        raise ApiError(400, f"input 'data' holds {values.size} values; shape {shape} needs {count}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ApiError(400, "UINT8 input values must be in 0..255")
    return values.astype(np.uint8).reshape(shape)


def _classification(values: np.ndarray, k: int, classes: list[str]) -> np.ndarray:
    """Triton's classification output: top k of each row as 'score:index:label' strings."""
    k = min(k, values.shape[1])
    rows = []
    for row in values:
        order = np.argsort(-row, kind="stable")[:k]
        rows.append([f"{row[i]:f}:{i}:{classes[i]}" for i in order])
    return np.array(rows, dtype=object)


def _bytes_tensor(values: np.ndarray) -> bytes:
    """BYTES elements in the binary extension: 4-byte little-endian length + the bytes."""
    parts = []
    for item in values.reshape(-1):
        encoded = str(item).encode()
        parts.append(struct.pack("<I", len(encoded)) + encoded)
    return b"".join(parts)


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    state = request.app.state
    served = state.registry.get(name, version)
    request.state.model = served.name
    payload, binary = _parse_request(
        await request.body(), request.headers.get("inference-header-content-length")
    )
    images = _input_array(served, payload, binary)
    result = await state.engine.infer(served, images)
    state.metrics.latency.labels(served.name, "queue").observe(result.queue_s)
    state.metrics.latency.labels(served.name, "inference").observe(result.inference_s)

    produced = dict(zip(served.output_names, result.outputs, strict=True))
    binary_default = bool((payload.get("parameters") or {}).get("binary_data_output", False))
    requested = payload.get("outputs") or [{"name": n} for n in served.output_names]
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for item in requested:
        output_name = item.get("name") if isinstance(item, dict) else None
        if output_name not in produced:
            raise ApiError(
                400,
                f"unknown output {output_name!r}; model {served.name!r} has "
                f"{', '.join(served.output_names)}",
            )
        parameters = item.get("parameters") or {}
        values = produced[output_name]
        datatype = DATATYPES[values.dtype]
        k = parameters.get("classification")
        if k:
            values, datatype = _classification(values, int(k), served.classes), "BYTES"
        entry: dict[str, Any] = {
            "name": output_name,
            "datatype": datatype,
            "shape": list(values.shape),
        }
        if parameters.get("binary_data", binary_default):
            raw = _bytes_tensor(values) if datatype == "BYTES" else values.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = values.reshape(-1).tolist()
        outputs.append(entry)

    response: dict[str, Any] = {
        "model_name": served.name,
        "model_version": str(served.version),
        "outputs": outputs,
    }
    if "id" in payload:
        response["id"] = payload["id"]
    header = json.dumps(response).encode()
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(chunks),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
