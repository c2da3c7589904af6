"""The Open Inference Protocol over gRPC (`--grpc-port`, Triton's 8001 by default).

grpcio's asyncio server runs on uvicorn's event loop, beside HTTP, and shares everything with it:
the registry, the inference engine (batching and workers), the metrics, the API key (sent as
request metadata under the HTTP header's name, lower-cased), the size limit (`max_body_bytes`
per message) and the shutdown: at SIGTERM readiness turns false and calls are still served for
the shutdown delay, as over HTTP; then both stop together, gRPC with a GOAWAY, and the calls in
flight finish (service.server).

Errors leave as gRPC status codes with HTTP's one-line messages: INVALID_ARGUMENT for a request
that does not fit the model, NOT_FOUND for an unknown model or version, UNAUTHENTICATED for a
missing key, UNAVAILABLE while not ready, INTERNAL (details logged, not sent) for the rest.

The generated modules register the protocol's messages under their own names (`inference.*`),
as tritonclient's and KServe's do: a process can import only one of them, so this module is
imported by `skipfold serve` only when gRPC is on.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format

from skipfold import __version__
from skipfold.common.images import ImageError
from skipfold.service import open_inference
from skipfold.service.failures import ApiError, GrpcPortError, client_error
from skipfold.service.oip import grpc_service_pb2 as pb
from skipfold.service.oip import grpc_service_pb2_grpc as pb_grpc
from skipfold.service.registry import ModelNotFound
from skipfold.service.served_model import ServedModel
from skipfold.service.settings import Settings
from skipfold.service.signature import DATATYPES

log = logging.getLogger("skipfold.service")

SERVICE = "inference.GRPCInferenceService"
# Reachable without the API key, as their HTTP twins: liveness, readiness, server metadata
OPEN_METHODS = frozenset(f"/{SERVICE}/{m}" for m in ("ServerLive", "ServerReady", "ServerMetadata"))
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def _handled(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Client errors become their status code and message; anything else INTERNAL, logged."""

    async def call(self: InferenceServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except (ApiError, ModelNotFound, ImageError) as exc:
            status, message = client_error(exc)  # type: ignore[misc]
            await context.abort(STATUS.get(status, grpc.StatusCode.INVALID_ARGUMENT), message)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("gRPC %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (logged on the server)")

    call.__name__ = method.__name__
    return call


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService on the app's state (the same objects HTTP serves from)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    @property
    def ready(self) -> bool:
        return bool(self.state.ready)

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="skipfold", version=__version__, extensions=open_inference.EXTENSIONS
        )

    @_handled
    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        self.state.registry.get(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self.ready)

    @_handled
    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        registry = self.state.registry
        served = registry.get(request.name, request.version or None)
        metadata = open_inference.model_metadata(
            sorted(registry.models.get(served.name, ())), served
        )
        return json_format.ParseDict(metadata, pb.ModelMetadataResponse())

    @_handled
    async def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        served = self.state.registry.get(request.name, request.version or None)
        return pb.ModelConfigResponse(
            config=json_format.ParseDict(open_inference.model_config(served), pb.ModelConfig())
        )

    @_handled
    async def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        rows = self.state.model_control.index(request.ready)
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**row) for row in rows]
        )

    @_handled
    async def RepositoryModelLoad(
        self, request: Any, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        await self.state.model_control.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @_handled
    async def RepositoryModelUnload(
        self, request: Any, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await self.state.model_control.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    @_handled
    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        state, started = self.state, time.perf_counter()
        served: ServedModel | None = None
        code = "OK"
        state.metrics.in_flight.inc()
        state.engine.other_requests += 1  # the engine runs a call inline only when alone
        try:
            served = state.registry.get(request.model_name, request.model_version or None)
            response = await self._infer(served, request)
            state.metrics.latency.labels(served.name, "total").observe(
                time.perf_counter() - started
            )
            return response
        except asyncio.CancelledError:  # the client went away, or its deadline passed
            code = "CANCELLED"
            raise
        except Exception as exc:
            known = client_error(exc)
            code = STATUS.get(known[0], grpc.StatusCode.INVALID_ARGUMENT) if known else None
            code = code.name if code else "INTERNAL"
            raise
        finally:
            state.engine.other_requests -= 1
            state.metrics.in_flight.dec()
            model = served.name if served else "-"
            state.metrics.requests.labels(model, "grpc_infer", code).inc()

    async def _infer(self, served: ServedModel, request: Any) -> pb.ModelInferResponse:
        inputs = _input_arrays(served, request)
        requested = list(request.outputs) or [
            pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in served.output_names
        ]
        open_inference.check_outputs(served, [item.name for item in requested])
        result = await self.state.engine.infer(served, *inputs)
        self.state.metrics.latency.labels(served.name, "queue").observe(result.queue_s)
        self.state.metrics.latency.labels(served.name, "inference").observe(result.inference_s)
        produced = dict(zip(served.output_names, result.outputs, strict=True))
        response = pb.ModelInferResponse(
            model_name=served.name, model_version=str(served.version), id=request.id
        )
        for item in requested:
            values = produced[item.name]
            datatype = DATATYPES[values.dtype]
            k = _classification_count(item)
            if k:
                values, datatype = open_inference.classification(values, k, served.classes), "BYTES"
            response.outputs.add(name=item.name, datatype=datatype, shape=list(values.shape))
            raw = (
                open_inference.bytes_tensor(values)
                if datatype == "BYTES"
                else values.astype(values.dtype.newbyteorder("<")).tobytes()
            )
            response.raw_output_contents.append(raw)
        return response


def _classification_count(item: Any) -> int:
    if "classification" not in item.parameters:
        return 0
    parameter = item.parameters["classification"]
    kind = parameter.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param") or getattr(parameter, kind) < 0:
        raise ApiError(400, "output parameter 'classification' must be a non-negative integer")
    return int(getattr(parameter, kind))


# The protocol's typed contents field of each datatype (FP16 travels as raw bytes only)
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
}  # fmt: skip


def _input_arrays(served: ServedModel, request: Any) -> tuple[np.ndarray, ...]:
    """The request's tensors in the model's input order: `raw_input_contents` (one per input,
    in the request's order) or typed contents."""
    described = [(t.name, t.datatype, list(t.shape)) for t in request.inputs]
    checked = open_inference.check_inputs(served, described)
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ApiError(
            400, f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; one each"
        )
    arrays = []
    for item in checked:
        tensor = request.inputs[item.position]
        if raw:
            what = f"raw input {tensor.name!r}"
            arrays.append(open_inference.raw_values(raw[item.position], item, what))
            continue
        field = _CONTENTS.get(item.spec.datatype)
        if field is None:
            raise ApiError(400, f"input {tensor.name!r} ({item.spec.datatype}): send raw bytes")
        values = np.asarray(getattr(tensor.contents, field))
        arrays.append(open_inference.typed_values(values, item, f"{tensor.name!r} {field!r}"))
    return tuple(arrays)


class _ApiKey(grpc.aio.ServerInterceptor):
    """The API key in the request metadata, on every method but the open ones."""

    def __init__(self, key: str, header: str) -> None:
        self.key = key.encode()
        self.header = header.lower()

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method in OPEN_METHODS:
            return await continuation(details)
        given = next((v for k, v in details.invocation_metadata or () if k == self.header), "")
        given = given.encode() if isinstance(given, str) else given
        if hmac.compare_digest(given, self.key):
            return await continuation(details)
        message = f"missing or wrong API key (metadata {self.header})"

        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        return grpc.unary_unary_rpc_method_handler(refuse)


async def start(state: Any, settings: Settings) -> grpc.aio.Server:
    """A started gRPC server on `settings.grpc_port`, serving from the app's `state`."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    limit = settings.max_body_bytes
    server = grpc.aio.server(
        interceptors=[_ApiKey(key, settings.api_key_header)] if key else None,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 64 * 1024 * 1024)),
            ("grpc.so_reuseport", 0),  # a port in use is an error, as for HTTP
        ],
        maximum_concurrent_rpcs=settings.max_connections,
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state), server)
    address = f"{settings.host}:{settings.grpc_port}"
    try:
        if settings.ssl_certfile and settings.ssl_keyfile:
            credentials = grpc.ssl_server_credentials(
                [(settings.ssl_keyfile.read_bytes(), settings.ssl_certfile.read_bytes())]
            )
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise GrpcPortError(
            f"gRPC cannot listen on {address} (in use?); choose another --grpc-port, "
            "or --grpc-port 0 to turn gRPC off"
        )
    await server.start()
    tls = " with TLS" if settings.ssl_certfile else ""
    log.info("gRPC (Open Inference Protocol) on %s%s", address, tls)
    return server
