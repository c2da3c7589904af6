"""POST /predict: image files in, top-k classes out."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from skipfold.service.errors import error_response, known_error, unexpected_error
from skipfold.service.failures import ApiError
from skipfold.service.inference import InferenceEngine, Result
from skipfold.service.served_model import ServedModel

RAW_TYPES = ("image/", "application/octet-stream")


async def _read_images(request: Request) -> list[tuple[str | None, bytes]]:
    settings = request.app.state.settings
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=settings.max_files_per_request)
        except ApiError:
            raise
        except Exception as exc:  # malformed multipart, or over the file count
            raise ApiError(400, f"invalid multipart body: {exc}") from None
        files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise ApiError(400, "no image: the multipart body has no 'file' field with a file")
        return [(f.filename, await f.read()) for f in files]
    if content_type.startswith(RAW_TYPES):
        return [(None, await request.body())]
    raise ApiError(
        415,
        f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data with "
        "a 'file' field, or the image itself with an image/* content type",
    )


def _positive_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses; 9 digits at most
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) < 1:
        raise ApiError(
            400, f"invalid request: query parameter {name} must be an integer from 1 to 999999999"
        )
    return int(raw)


def _inputs(served: ServedModel) -> str:
    signature = served.signature
    return ", ".join(f"{t.name} {t.datatype} {signature.shape(t)}" for t in signature.inputs)


async def _infer(engine: InferenceEngine, served: ServedModel, images: list[np.ndarray]) -> Result:
    """All images in one call; one call each for a graph of a fixed batch of one."""
    if not served.signature.one_at_a_time:
        return await engine.infer(served, np.stack(images))
    parts = [await engine.infer(served, image[None]) for image in images]
    return replace(
        parts[0],
        outputs=[np.concatenate(o) for o in zip(*(p.outputs for p in parts), strict=True)],
        queue_s=sum(p.queue_s for p in parts),
        inference_s=sum(p.inference_s for p in parts),
    )


async def predict(request: Request) -> JSONResponse:
    """One image (raw body) or several (multipart field `file`) -> top-k classes each."""
    started = time.perf_counter()
    model = request.query_params.get("model") or None
    version = _positive_int(request, "version")
    top_k = _positive_int(request, "top_k")
    state = request.app.state
    served = state.registry.get(model, version)
    request.state.model = served.name
    if served.input_size is None:
        raise ApiError(
            400,
            f"model {served.name!r} is not an image classifier (it takes "
            f"{_inputs(served)}): /predict takes images; send its tensors to "
            f"POST /v2/models/{served.name}/infer (the Open Inference Protocol)",
        )
    files = await _read_images(request)
    images = []
    for index, (name, data) in enumerate(files):
        try:
            images.append(
                await state.decoder.decode(data, served.input_size, served.resize_shorter)
            )
        except ValueError as exc:
            if len(files) > 1:
                exc.args = (f"file {index + 1} ({name or 'unnamed'}): {exc}",)
            raise
    decoded = time.perf_counter()
    result = await _infer(state.engine, served, images)
    probabilities = served.probabilities(result.outputs)
    k = min(top_k or state.settings.top_k, probabilities.shape[1])
    results = []
    for (name, _), row in zip(files, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        results.append(
            {
                "filename": name,
                "predictions": [
                    {
                        "label": served.classes[i] if i < len(served.classes) else str(i),
                        "index": int(i),
                        "probability": float(row[i]),
                    }
                    for i in order
                ],
            }
        )
    finished = time.perf_counter()
    state.metrics.latency.labels(served.name, "queue").observe(result.queue_s)
    state.metrics.latency.labels(served.name, "inference").observe(result.inference_s)
    # A JSONResponse as is: FastAPI's response-model encoding would only cost time here.
    return JSONResponse(
        {
            "model": served.name,
            "version": served.version,
            "request_id": request.state.request_id,
            "results": results,
            "timings_ms": {
                "decode": round(1000 * (decoded - started), 3),
                "queue": round(1000 * result.queue_s, 3),
                "inference": round(1000 * result.inference_s, 3),
                "total": round(1000 * (finished - started), 3),
            },
        }
    )


async def endpoint(scope: dict, receive: Any, send: Any) -> None:
    """POST /predict as a bare ASGI app, its errors answered here: the request middleware
    dispatches to it directly, past FastAPI's routing and exception layers, which cost
    0.6-0.7 ms per request on the 2-core CPU (docs/results.md)."""
    request = Request(scope, receive)
    response: Response
    try:
        response = await predict(request)
    except Exception as exc:
        known = known_error(exc)
        response = error_response(*known, request) if known else unexpected_error(request, exc)
    await response(scope, receive, send)


# FastAPI documents the endpoint from this description (service.app).
_QUERY = [
    ("model", {"type": "string"}, "model name (default: the server's default)"),
    (
        "version",
        {"type": "integer", "minimum": 1, "maximum": 999_999_999},
        "model version (default: the latest loaded)",
    ),
    ("top_k", {"type": "integer", "minimum": 1, "maximum": 999_999_999}, "classes per image"),
]
OPENAPI = {
    "post": {
        "summary": "Classify images",
        "description": "One image as the raw body (Content-Type image/*), or several as "
        "multipart/form-data fields named `file`. PNG, JPEG, WebP, BMP or GIF; resized to the "
        "model's input size. Returns the top-k classes of each image and stage timings.",
        "operationId": "predict",
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
            for name, schema, text in _QUERY
        ],
        "requestBody": {
            "required": True,
            "content": {
                "image/*": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                        "required": ["file"],
                    }
                },
            },
        },
        "responses": {
            "200": {"description": "top-k classes per image, in upload order"},
            "400": {"description": "corrupt image, bad multipart body or bad query parameter"},
            "404": {"description": "unknown model or version"},
            "413": {"description": "body or image over the limits"},
            "415": {"description": "unsupported content type or image format"},
        },
    }
}
