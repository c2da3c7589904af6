"""Running the app under uvicorn, with a graceful SIGTERM and a clean start-up failure.

On SIGTERM (or Ctrl-C) readiness turns false at once, so a load balancer stops sending new
requests; after `shutdown_delay_s` uvicorn stops accepting connections and the gRPC server
stops taking calls (a GOAWAY), both let the requests in flight finish (within GRACE_S), the
lifespan shutdown runs and the process exits 0.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from types import FrameType
from typing import Any

import uvicorn

from skipfold.formats.model_config import RepositoryError
from skipfold.service.app import GRACE_S, create_app
from skipfold.service.engine_check import EngineCheckError
from skipfold.service.failures import GrpcPortError
from skipfold.service.memory import Heap
from skipfold.service.protocol import TimedHttpProtocol
from skipfold.service.runtime import DeviceError
from skipfold.service.settings import Settings

log = logging.getLogger("skipfold.service")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any, delay: float) -> None:
        super().__init__(config)
        self.app_state = app.state
        self.delay = delay
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app_state.ready = False
        if self.delay > 0 and not self._draining:
            self._draining = True
            log.info("shutting down: not ready; stopping in %.1f s", self.delay)
            asyncio.get_event_loop().call_later(self.delay, self._stop, sig, frame)
            return
        self._stop(sig, frame)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        grpc_server = getattr(self.app_state, "grpc_server", None)
        if grpc_server is not None:  # drains beside HTTP, not after it: one grace period
            asyncio.get_event_loop().create_task(grpc_server.stop(GRACE_S))
        # uvicorn re-raises the captured signal once it has shut down, which would end a
        # graceful shutdown with status 143; the shutdown was clean, so exit 0 instead.
        getattr(self, "_captured_signals", []).clear()


class _CleanStartupFailure:
    """Replace uvicorn's traceback for a start-up failure we explain ourselves by one line."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def clean_send(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                last = message.get("message", "").strip().splitlines()[-1:] or [""]
                for error in (RepositoryError, DeviceError, EngineCheckError, GrpcPortError):
                    prefix = f"{error.__module__}.{error.__qualname__}: "
                    if last[0].startswith(prefix):
                        message = {**message, "message": "cannot start: " + last[0][len(prefix) :]}
            await send(message)

        await self.app(scope, receive, clean_send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


def _allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files towards `wanted` (as nginx's worker_rlimit_nofile):
    the default soft limit (often 1,024) would refuse clients long before max_connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(settings: Settings) -> int:
    app = create_app(settings)
    app.state.serve_grpc = settings.grpc_port != 0  # started in the lifespan, beside HTTP
    _allow_open_files(settings.max_connections + 256)  # + the models, logs and sockets of its own
    app.state.heap = Heap.of_this_process()
    config = uvicorn.Config(
        _CleanStartupFailure(app),
        host=settings.host,
        port=settings.port,
        http=functools.partial(
            TimedHttpProtocol,
            header_timeout=settings.header_timeout_s,
            body_timeout=settings.body_timeout_s,
        ),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
        log_level=settings.log_level,
        access_log=False,  # service.middleware logs each request with its id
        timeout_graceful_shutdown=int(GRACE_S),
        lifespan="on",
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    server = _Server(config, app, settings.shutdown_delay_s)
    # every request read, started or not: the engine runs a call inline only when alone
    app.state.request_tasks = server.server_state.tasks
    server.run()
    return 0 if server.started else 3
