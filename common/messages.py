"""Validation errors as the one line a user reads (the CLI, the run folder, the model card)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line: 'field: message; other: message'."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error_message(error)
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def error_message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]
