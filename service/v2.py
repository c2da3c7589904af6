"""The Open Inference Protocol (KServe v2) over REST, as Triton Inference Server speaks it.

Health, server and model metadata, readiness, and inference with JSON tensors or the binary
tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw
tensor bytes), plus Triton's classification extension (`"classification": k` on an output
returns the top k as "score:index:label" strings) and GET .../config. Existing clients
(tritonclient.http, KServe's) work unchanged.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from skipfold import __version__
from skipfold.service.failures import ApiError, describe
from skipfold.service.infer_request import InferRequest, OutputParameters, RequestedOutput
from skipfold.service.open_inference import (
    EXTENSIONS,
    bytes_tensor,
    check_inputs,
    check_outputs,
    classification,
    model_config,
    model_metadata,
    raw_values,
    typed_values,
    value_kind,
)
from skipfold.service.served_model import ServedModel
from skipfold.service.signature import DATATYPES

router = APIRouter(prefix="/v2")

# Bodies up to this size are parsed and checked on the event loop (one 32x32 image as JSON is
# about 8 KB: well under a millisecond); larger ones in a worker thread, as parsing a hostile
# body of a few megabytes can take a second or more.
INLINE_BODY_BYTES = 64 * 1024


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


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def metadata(request: Request, name: str, version: str | None = None) -> dict:
    registry = request.app.state.registry
    served = registry.get(name, version)
    return model_metadata(sorted(registry.models.get(served.name, ())), served)


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
async def config(request: Request, name: str, version: str | None = None) -> dict:
    return model_config(request.app.state.registry.get(name, version))


def _parse_request(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    binary = b""
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit() and len(header_length) < 12):
            raise ApiError(400, "invalid Inference-Header-Content-Length header")
        length = int(header_length)
        if length > len(body):
            raise ApiError(400, "Inference-Header-Content-Length exceeds the body")
        body, binary = body[:length], body[length:]
    try:
        return InferRequest.model_validate_json(body), binary
    except ValidationError as exc:
        raise ApiError(400, "invalid inference request: " + describe(exc.errors())) from None


def _read_request(
    served: ServedModel, body: bytes, header_length: str | None
) -> tuple[InferRequest, tuple[np.ndarray, ...]]:
    payload, binary = _parse_request(body, header_length)
    return payload, _input_arrays(served, payload, binary)


def _input_arrays(
    served: ServedModel, request: InferRequest, binary: bytes
) -> tuple[np.ndarray, ...]:
    """The request's tensors in the model's input order: JSON `data`, or bytes after the JSON
    header, taken in the request's order (binary tensor data extension)."""
    described = [(t.name, t.datatype, t.shape) for t in request.inputs]
    checked = check_inputs(served, described)
    offsets, offset = {}, 0
    for position, tensor in enumerate(request.inputs):
        size = tensor.parameters.binary_data_size if tensor.parameters else None
        if size is not None:
            offsets[position] = (offset, size)
            offset += size
    if offset > len(binary):
        raise ApiError(
            400, f"binary inputs need {offset} bytes after the header; got {len(binary)}"
        )
    arrays = []
    for item in checked:
        tensor = request.inputs[item.position]
        if item.position in offsets:
            start, size = offsets[item.position]
            raw = binary[start : start + size]
            arrays.append(raw_values(raw, item, f"binary input {tensor.name!r}"))
        elif tensor.data is None:
            raise ApiError(400, f"input {tensor.name!r} has neither 'data' nor binary data")
        else:
            values = _data_array(tensor.data, value_kind(item))
            arrays.append(typed_values(values, item, f"{tensor.name!r} 'data'"))
    return tuple(arrays)


def _data_array(data: list[Any], kind: str) -> np.ndarray:
    """JSON `data` as an array of numbers or booleans; ApiError if ragged or not `kind`."""
    try:
        values = np.array(data)
    except (ValueError, TypeError):  # ragged, or more dimensions than numpy has
        values = None
    if values is None or (values.size and values.dtype.kind not in "biuf"):
        raise ApiError(400, f"input 'data' must be a flat or evenly nested list of {kind}")
    return values


_INFER_PATHS = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")


def document(schema: dict, model_names: list[str]) -> None:
    """The infer route reads its body itself (JSON, or a JSON header and raw tensor bytes), so
    FastAPI cannot see its type: put InferRequest into the OpenAPI spec by hand. And name the
    models this server serves, so /docs offers them and generated requests reach them."""
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if path.startswith("/v2/models/") and parameter["name"] == "name":
                    parameter["schema"]["enum"] = model_names
    body = InferRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}))
    components["InferRequest"] = body
    reference = {"$ref": "#/components/schemas/InferRequest"}
    for path in _INFER_PATHS:
        operation = schema["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "description": "JSON; or, with the Inference-Header-Content-Length header (binary "
            "tensor data extension), that many bytes of JSON followed by the raw tensors",
            "content": {
                "application/json": {"schema": reference},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
        operation["responses"]["400"] = {"description": "the request does not fit the model"}


@router.post(_INFER_PATHS[0].removeprefix("/v2"))
@router.post(_INFER_PATHS[1].removeprefix("/v2"))
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    state = request.app.state
    served = state.registry.get(name, version)
    request.state.model = served.name
    body = await request.body()
    header_length = request.headers.get("inference-header-content-length")
    if len(body) <= INLINE_BODY_BYTES:
        payload, inputs = _read_request(served, body, header_length)
    else:
        payload, inputs = await asyncio.to_thread(_read_request, served, body, header_length)
    requested = payload.outputs or [RequestedOutput(name=n) for n in served.output_names]
    check_outputs(served, [item.name for item in requested])
    result = await state.engine.infer(served, *inputs)
    state.metrics.latency.labels(served.name, "queue").observe(result.queue_s)
    state.metrics.latency.labels(served.name, "inference").observe(result.inference_s)

    produced = dict(zip(served.output_names, result.outputs, strict=True))
    binary_default = payload.parameters.binary_data_output if payload.parameters else False
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for item in requested:
        parameters = item.parameters or OutputParameters()
        values = produced[item.name]
        datatype = DATATYPES[values.dtype]
        if parameters.classification:
            values = classification(values, parameters.classification, served.classes)
            datatype = "BYTES"
        entry: dict[str, Any] = {
            "name": item.name,
            "datatype": datatype,
            "shape": list(values.shape),
        }
        binary_output = parameters.binary_data
        if binary_output if binary_output is not None else binary_default:
            raw = bytes_tensor(values) if datatype == "BYTES" else values.tobytes()
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
    if payload.id is not None:
        response["id"] = payload.id
    header = json.dumps(response).encode()
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(chunks),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
