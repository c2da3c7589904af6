"""POST /predict: image files in, top-k classes out."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from service.errors import ApiError
from skipfold.images import open_image, to_array

router = APIRouter()

# Images up to this many pixels are decoded on the event loop (tens of microseconds);
# larger ones in a worker thread, so one big upload cannot stall every other request.
INLINE_DECODE_PIXELS = 256 * 256
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


async def _decode(data: bytes, size: tuple[int, int], max_pixels: int) -> np.ndarray:
    image = open_image(data, max_pixels=max_pixels)
    if image.width * image.height <= INLINE_DECODE_PIXELS:
        return to_array(image, size)
    return await asyncio.to_thread(to_array, image, size)


def _positive_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"invalid request: query parameter {name} must be an integer >= 1")
    return int(raw)


@router.post(
    "/predict",
    openapi_extra={
        "parameters": [
            {
                "name": "model",
                "in": "query",
                "schema": {"type": "string"},
                "description": "model name (default: the server's default)",
            },
            {
                "name": "version",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1},
                "description": "model version (default: the latest loaded)",
            },
            {
                "name": "top_k",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1},
                "description": "classes per image (default 5)",
            },
        ]
    },
)
async def predict(request: Request) -> JSONResponse:
    """One image (raw body) or several (multipart field `file`) -> top-k classes each.

    Query parameters are read by hand, not declared: FastAPI's per-request parameter
    validation cost about 0.3 ms of event-loop CPU per request here (docs/results.md).
    """
    started = time.perf_counter()
    model = request.query_params.get("model") or None
    version = _positive_int(request, "version")
    top_k = _positive_int(request, "top_k")
    state = request.app.state
    served = state.registry.get(model, version)
    request.state.model = served.name
    files = await _read_images(request)
    images = []
    for index, (name, data) in enumerate(files):
        try:
            images.append(await _decode(data, served.input_size, state.settings.max_image_pixels))
        except ValueError as exc:
            if len(files) > 1:
                exc.args = (f"file {index + 1} ({name or 'unnamed'}): {exc}",)
            raise
    decoded = time.perf_counter()
    result = await state.engine.infer(served, np.stack(images))
    probabilities = result.outputs[served.output_names.index("probabilities")]
    k = min(top_k or state.settings.top_k, len(served.classes))
    results = []
    for (name, _), row in zip(files, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        results.append(
            {
                "filename": name,
                "predictions": [
                    {
                        "label": served.classes[i],
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
