"""The page at `/` (try a model in the browser) and `/docs` (Swagger UI), served offline.

Everything either page loads comes from this server: the page's own HTML, script and style
(service/page/), the demo's sample images (made on first request, as `skipfold demo` makes
them), and Swagger UI's assets from the fastapi-swagger package. No CDN, no request elsewhere.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from skipfold.service.failures import ApiError

ASSETS = Path(__file__).parent / "page"
# Reachable without the API key: static files, no model output (service.middleware)
OPEN_PREFIXES = ("/page/", "/swagger/", "/samples")
OPEN_PATHS = ("/", "/docs", "/openapi.json")


@functools.cache
def _samples() -> dict[str, bytes]:
    """label -> PNG of the demo's sample of that class (`shapes`, the built-in data)."""
    from PIL import Image

    from skipfold.common.shapes import class_samples

    pngs = {}
    for label, image in class_samples():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        pngs[label] = buffer.getvalue()
    return pngs


async def index(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    config = {"apiKeyHeader": settings.api_key_header, "needsKey": settings.api_key is not None}
    html = (ASSETS / "index.html").read_text()
    return HTMLResponse(html.replace("{{CONFIG}}", json.dumps(config)))


async def samples() -> list[dict[str, str]]:
    """The demo's samples: one `shapes` image per class (right for models trained on shapes)."""
    return [{"label": label, "url": f"/samples/{label}.png"} for label in _samples()]


async def sample(label: str) -> Response:
    png = _samples().get(label.removesuffix(".png"))
    if png is None:
        raise ApiError(404, f"no sample {label!r}; samples: {', '.join(_samples())}")
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def install(app: FastAPI) -> None:
    from fastapi_swagger import patch_fastapi

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.add_api_route("/samples", samples, methods=["GET"], include_in_schema=False)
    app.add_api_route("/samples/{label}", sample, methods=["GET"], include_in_schema=False)
    app.mount("/page", StaticFiles(directory=ASSETS), name="page")
    patch_fastapi(app, docs_url="/docs", redirect_from_root_to_docs=False, title="skipfold API")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
