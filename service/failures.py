"""The errors a request can meet, without a transport: HTTP (`service.errors`) and gRPC
(`service.grpc_server`) each turn them into their own status codes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skipfold.common.images import ImageError, ImageTooLarge
from skipfold.service.registry import ModelNotFound


class ApiError(Exception):
    """An error to report to the client as it is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GrpcPortError(RuntimeError):
    """The gRPC port cannot be bound (in use, or not allowed): the server does not start."""


def describe(errors: Sequence[Any], shown: int = 5) -> str:
    """pydantic's errors as one line: `where: what; ...`, the body's own prefix left out; the
    first `shown` only (a hostile body can hold millions)."""
    parts = []
    for error in errors[:shown]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    if len(errors) > shown:
        parts.append(f"and {len(errors) - shown:,} more")
    return "; ".join(parts)


def client_error(exc: Exception) -> tuple[int, str] | None:
    """HTTP status and message of an error the client caused; None for anything else."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, ModelNotFound):
        return 404, str(exc.args[0])
    if isinstance(exc, ImageError):
        return 413 if isinstance(exc, ImageTooLarge) else 415 if exc.unsupported else 400, str(exc)
    return None
