"""Per-request plumbing, as plain ASGI: request id, body limit, API key, access log, and the
direct dispatch of the hot endpoints (past FastAPI's routing; see service.predict.endpoint).

The body limit is enforced twice: a declared Content-Length over the limit is refused before a
byte is read, and a body streamed without one is counted as it arrives.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from skipfold.service.failures import ApiError
from skipfold.service.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Reachable without the API key: probes, server metadata and metrics.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready")

access_log = logging.getLogger("skipfold.access")


async def _send_json(send: Send, status: int, body: dict, request_id: str) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        api_key: str | None = None,
        api_key_header: str = "X-API-Key",
        direct: dict[tuple[str, str], ASGIApp] | None = None,
        also_open: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        self.direct = direct or {}  # (method, path) -> the ASGI app that serves it
        self.also_open = also_open or (lambda path: False)  # more paths without the key
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode() if api_key else None
        self.api_key_header = api_key_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given[:128] if given.isprintable() and given else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status_box = [0]
        path = scope["path"]
        endpoint = "predict" if path == "/predict" else "infer" if path.endswith("/infer") else None
        if endpoint:
            self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            refusal = self._refusal(scope, headers)
            if refusal:
                status_box[0] = refusal[0]
                await _send_json(send, refusal[0], {"error": refusal[1]}, request_id)
                return
            app = self.direct.get((scope["method"], path), self.app)
            await app(scope, self._counting(receive), send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if endpoint:
                self.metrics.in_flight.dec()
                model = scope["state"].get("model", "-")
                self.metrics.requests.labels(model, endpoint, str(status_box[0])).inc()
                if status_box[0] == 200:
                    self.metrics.latency.labels(model, "total").observe(elapsed)
            access_log.info(
                "%s %s %s %d %.2fms",
                request_id,
                scope["method"],
                scope["path"],
                status_box[0],
                1000 * elapsed,
            )

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        path = scope["path"]
        if self.api_key is not None and path not in OPEN_PATHS and not self.also_open(path):
            given = headers.get(self.api_key_header, b"")
            if not hmac.compare_digest(given, self.api_key):
                return 401, f"missing or wrong API key (header {self.api_key_header.decode()})"
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return 400, "invalid Content-Length header"
            if length > self.max_body_bytes:
                return 413, (
                    f"request body of {length:,} bytes exceeds the limit of "
                    f"{self.max_body_bytes:,} bytes"
                )
        return None

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ApiError(413, f"request body exceeds the limit of {limit:,} bytes")
            return message

        return counted
