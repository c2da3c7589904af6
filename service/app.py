"""The FastAPI app: models loaded and warmed up in the lifespan, before the server is ready."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response

from skipfold import __version__
from skipfold.common.images import DEFAULT_MAX_PIXELS
from skipfold.service import errors, page, predict, repository_api, v2
from skipfold.service.decode import Decoder, default_max_pixels
from skipfold.service.inference import InferenceEngine
from skipfold.service.memory import trim_after_bursts
from skipfold.service.metrics import Metrics
from skipfold.service.middleware import RequestContext
from skipfold.service.model_control import ModelControl
from skipfold.service.registry import ModelRegistry
from skipfold.service.served_model import ServedModel
from skipfold.service.settings import Settings

log = logging.getLogger("skipfold.service")
GRACE_S = 30.0  # as uvicorn's graceful shutdown (service.server)


def _warm_up_decoders() -> None:
    """Pillow imports its format plugins on first use: pay that before the first request."""
    import io

    from PIL import Image

    from skipfold.common.images import FORMATS, decode_image

    for fmt in FORMATS:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, fmt)
        decode_image(buffer.getvalue(), (8, 8))


def _describe(model: ServedModel) -> str:
    card = model.card
    kind = f"{card.variant}, {'folded' if card.folded else 'not folded'}" if card else "no card"
    kind += "" if model.input_size else ", not an image classifier: /v2 only"
    kind += ", test-time flips" if card and card.test_flip else ""
    providers = ", ".join(model.runner.providers)
    if model.engine == "onnxruntime-openvino":
        providers += f" ({model.inference_precision})"
    if getattr(model.runner, "graphs", None) is not None:
        providers += " with CUDA graphs"
    return f"serving {model.name} version {model.version} ({kind}) on {providers}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Models loaded and warmed up before readiness; the engine closed after the last request."""
    settings: Settings = app.state.settings
    # Loading and warm-up may take seconds: off the event loop, before readiness.
    registry = await asyncio.to_thread(ModelRegistry.load, settings)
    await asyncio.to_thread(registry.warm_up, settings.warmup_runs)
    await asyncio.to_thread(_warm_up_decoders)
    app.state.registry = registry
    # models that take no images (any ONNX model): their requests go to /v2 only
    sizes = [m.input_size for m in registry.all() if m.input_size]
    largest_input = max((height * width for height, width in sizes), default=0)
    app.state.decoder = Decoder(
        settings.max_image_pixels
        or (default_max_pixels(largest_input) if largest_input else DEFAULT_MAX_PIXELS),
        settings.decode_pixels_in_flight,
    )
    app.state.engine = InferenceEngine(
        app.state.metrics,
        settings.max_batch_size,
        settings.max_queue_delay_ms,
        settings.inline_max_ms,
        # the server's request tasks, when it shares them (service.server)
        getattr(app.state, "request_tasks", None),
        settings.workers,
    )
    for model in registry.all():
        log.info(_describe(model))
    app.state.model_control = ModelControl(registry, settings, app.state)
    app.state.model_control.start()
    grpc_server = None
    if getattr(app.state, "serve_grpc", False):  # set by service.server: not in-process tests
        from skipfold.service import grpc_server as grpc_module

        grpc_server = await grpc_module.start(app.state, settings)
    app.state.grpc_server = grpc_server
    app.state.ready = True
    heap = getattr(app.state, "heap", None)  # set by service.server, before its threads
    trimmer = asyncio.create_task(trim_after_bursts(heap)) if heap else None
    try:
        yield
    finally:
        app.state.ready = False
        if trimmer:
            trimmer.cancel()
        await app.state.model_control.stop()
        if grpc_server is not None:
            await grpc_server.stop(GRACE_S)  # calls in flight finish, new ones are refused
        await app.state.engine.close()


async def list_models(request: Request) -> dict:
    """GET /models: every model served, described by its latest loaded version."""
    registry = request.app.state.registry
    listed = []
    for name, versions in registry.models.items():
        latest = versions[max(versions)].describe()
        del latest["version"]
        listed.append({"name": name, "versions": sorted(versions), **latest})
    return {"default": registry.default, "models": listed}


async def prometheus(request: Request) -> Response:
    """GET /metrics in Prometheus' text format."""
    body = request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def _openapi_by_hand(app: FastAPI) -> None:
    """POST /predict is served past FastAPI's routing and the v2 infer body is read by hand:
    document both here."""

    def openapi() -> dict:
        names = sorted(app.state.registry.models)
        if app.openapi_schema is None or app.state.openapi_models != names:
            app.state.openapi_models = names  # model control changes the served models
            app.openapi_schema = None
            schema = FastAPI.openapi(app)  # builds and caches app.openapi_schema
            schema["paths"] = {"/predict": predict.OPENAPI, **schema["paths"]}
            v2.document(schema, names)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app serving `settings.repository`; nothing is loaded until the lifespan starts."""
    settings = settings or Settings()
    app = FastAPI(
        title="skipfold",
        version=__version__,
        description="BatchNorm-folded and SkipInit Wide-ResNets on ONNX Runtime.",
        lifespan=lifespan,
        docs_url=None,  # served by service.page, from local assets
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.ready = False
    errors.install(app)
    # Served by the request middleware directly; routed too, so another method gets a 405
    app.add_route("/predict", predict.predict, methods=["POST"], include_in_schema=False)
    app.include_router(v2.router)
    app.include_router(repository_api.router)
    # Kubernetes-style aliases of the v2 probes
    app.add_api_route("/healthz", v2.live, methods=["GET"])
    app.add_api_route("/readyz", v2.ready, methods=["GET"])
    app.add_api_route("/models", list_models, methods=["GET"])
    app.add_api_route("/metrics", prometheus, methods=["GET"])
    page.install(app)
    _openapi_by_hand(app)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.max_body_bytes,
        metrics=app.state.metrics,
        api_key=api_key,
        api_key_header=settings.api_key_header,
        direct={("POST", "/predict"): predict.endpoint},
        also_open=page.is_open,
    )
    origins = settings.allowed_origins()
    if origins:  # outermost: a browser's preflight carries no API key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Content-Type",
                settings.api_key_header,
                "Inference-Header-Content-Length",
                "X-Request-ID",
            ],
            expose_headers=["X-Request-ID", "Inference-Header-Content-Length"],
            max_age=600,
        )
    return app
