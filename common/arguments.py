"""Command-line arguments checked as they are parsed: bad input costs one line and exit 2.

Every subcommand's parser is an `ArgumentParser` from here: an error is one line (no usage
block), and `--help` shows every default. Values that a typed config also holds are checked by
the config's own field (`field_type`), so each rule is written once.
"""

from __future__ import annotations

import argparse
import math
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError

from skipfold.common.io import check_folder_path
from skipfold.common.messages import error_message


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: `skipfold train: error: ...`, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Appends '(default: X)' to every option that has a meaningful default."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and _shows_default(action):  # else argparse prints no help line
            action.help = f"(default: {default_text(action.default)})".replace("%", "%%")
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not _shows_default(action):
            return text
        return f"{text} (default: {default_text(action.default)})".strip().replace("%", "%%")


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    return bool(action.option_strings) and not (
        default is None or default is argparse.SUPPRESS or isinstance(default, bool)
    )


def default_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def field_type(model: type[BaseModel], name: str) -> Callable[[str], Any]:
    """An argparse `type` that checks a value exactly as `model`'s field `name` does."""
    info = model.model_fields[name]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    kind = _scalar_kind(info.annotation)

    def parse(text: str | list[str]) -> Any:
        try:
            if isinstance(text, list):  # the items of a comma-separated list, checked as one
                return adapter.validate_python(text)
            return adapter.validate_python(_number(kind, text) if kind else text)
        except ValidationError as exc:
            message = error_message(exc.errors()[0])
            shown = ",".join(text) if isinstance(text, list) else text
            got = "" if "got" in message else f", got {shown!r}"
            raise argparse.ArgumentTypeError(message + got) from None

    parse.__name__ = name
    return parse


def _scalar_kind(annotation: Any) -> type | None:
    """int or float if the annotation is (an optional, annotated) number, else None."""
    if annotation in (int, float):
        return annotation
    for arg in typing.get_args(annotation):
        kind = _scalar_kind(arg)
        if kind:
            return kind
    return None


def checked(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a function that raises ValueError for bad input."""

    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def _number(kind: type, text: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """An int (or float) >= minimum."""

    def parse(text: str) -> Any:
        value = _number(kind, text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text!r}")
        return value

    parse.__name__ = f"{kind.__name__} >= {minimum:g}"
    return parse


def positive(kind: type = float) -> Callable[[str], Any]:
    """A number > 0."""

    def parse(text: str) -> Any:
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def fraction(text: str) -> float:
    """A number from 0 to 1."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def port(text: str) -> int:
    value = _number(int, text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {text!r}")
    return value


def csv(item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """A comma-separated list, each item checked by `item`."""

    def parse(text: str) -> list[Any]:
        values = [item(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected a comma-separated list, got nothing")
        return values

    return parse


def choice(options: Iterable[str]) -> Callable[[str], str]:
    """One of `options` (for list items; a plain option uses argparse's `choices`)."""
    allowed = list(options)

    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def existing_folder(text: str) -> Path:
    """A folder that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path


def folder_to_write(text: str) -> Path:
    """A folder that may exist or not, but is not a file (nor under one)."""
    checked(check_folder_path)(text)
    return Path(text)


def file_to_write(text: str) -> Path:
    """A file path to create or replace: not a folder, and not under a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file")
    folder_to_write(str(path.parent))
    return path


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text} {reason}")
    return path


def http_url(text: str) -> str:
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT, got {text!r}")
    return text.rstrip("/")
