"""Over HTTP every error leaves as JSON `{"error": "..."}` with a precise status; never a
traceback. The errors themselves, transport-free, are in `service.failures`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from skipfold.common.images import ImageError
from skipfold.service.failures import ApiError, client_error, describe
from skipfold.service.registry import ModelNotFound

log = logging.getLogger("skipfold.service")


def error_response(
    status: int,
    message: str,
    request: Request | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    headers = dict(headers or {})
    request_id = getattr(getattr(request, "state", None), "request_id", None)
    if request_id:
        headers["X-Request-ID"] = request_id
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def known_error(exc: Exception) -> tuple[int, str] | None:
    """Status and message of an error the client caused over HTTP; None for anything else."""
    if isinstance(exc, ClientDisconnect):  # nginx's 499: nobody is left to read the answer
        return 499, "the client closed the connection before the request was read"
    return client_error(exc)


def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s failed", getattr(request.state, "request_id", "-"), exc_info=exc)
    return error_response(500, "internal error (logged on the server)", request)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    @app.exception_handler(ModelNotFound)
    @app.exception_handler(ImageError)
    @app.exception_handler(ClientDisconnect)
    async def client_error(request: Request, exc: Exception) -> JSONResponse:
        status, message = known_error(exc)  # type: ignore[misc]
        return error_response(status, message, request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid request: " + describe(exc.errors()), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return error_response(exc.status_code, message, request, exc.headers)  # e.g. Allow

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error(request, exc)
