"""Command-line flags generated from a typed model's fields: each setting declared once.

A field's flag is `--name-with-dashes` (or its `flag`), its help is the field's description, its
check is the field's own validation (`arguments.field_type`), its choices the Literal's values,
and `--help` shows its default (or its `shown_default`, where the default is computed). Extras
sit in the field's `json_schema_extra`: `flag`, `shown_default`, `metavar`.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from skipfold.common import arguments


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def flag_name(model: type[BaseModel], name: str) -> str:
    return _extra(model.model_fields[name]).get("flag") or "--" + name.replace("_", "-")


def shown_default(model: type[BaseModel], name: str) -> str | None:
    """What `--help` and the docs say the default is; None for a field without one."""
    info = model.model_fields[name]
    extra = _extra(info)
    if "shown_default" in extra:
        return str(extra["shown_default"])
    if info.default is PydanticUndefined or info.default is None:
        return None
    if isinstance(info.default, bool):
        return None  # a switch says what it does
    return arguments.default_text(info.default)


def choices(model: type[BaseModel], name: str) -> tuple[Any, ...] | None:
    """The values a Literal field (or a list of them, or an optional one) takes."""
    pending = [model.model_fields[name].annotation]
    while pending:
        candidate = pending.pop()
        if typing.get_origin(candidate) is typing.Literal:
            return typing.get_args(candidate)
        pending += typing.get_args(candidate)
    return None


def add_field_flags(
    group: Any,
    model: type[BaseModel],
    names: Iterable[str],
    *,
    unset: bool = False,
    types: Mapping[str, Callable[[str], Any]] | None = None,
    shown: Mapping[str, str] | None = None,
) -> None:
    """One flag per field, `dest` the field's name. `unset`: every flag defaults to None (and a
    switch to None rather than False), so that what was not given can come from elsewhere (the
    environment, a recipe); the default `--help` shows is still the field's. `types` replaces a
    field's check where the command line must check more (a folder that must exist); `shown`
    replaces the default `--help` states (one that another setting decides)."""
    for name in names:
        info = model.model_fields[name]
        help_text = info.description or ""
        listed = _list_type(model, name)
        options = choices(model, name)
        if listed is not None and options is not None:
            help_text += f" (of {', '.join(map(str, options))})"
        default = (shown or {}).get(name) or shown_default(model, name)
        if default is not None and "(default" not in help_text:
            help_text = f"{help_text} (default: {default})".strip()
        help_text = help_text.replace("%", "%%")
        flag = flag_name(model, name)
        if info.annotation is bool:  # a switch: on when given (off, with a default of True)
            if unset:
                group.add_argument(
                    flag, dest=name, action="store_const", const=not info.default, help=help_text
                )
            else:
                action = "store_false" if info.default else "store_true"
                group.add_argument(flag, dest=name, action=action, help=help_text)
            continue
        value_default = None if unset else info.default
        if value_default is PydanticUndefined:
            value_default = None
        if options is not None and listed is None and name not in (types or {}):
            group.add_argument(
                flag, dest=name, choices=options, default=value_default, help=help_text
            )
            continue
        check = (types or {}).get(name) or listed
        group.add_argument(
            flag,
            dest=name,
            type=check or arguments.field_type(model, name),
            default=value_default,
            help=help_text,
            metavar=_extra(info).get("metavar") or flag.lstrip("-").replace("-", "_").upper(),
        )


def _list_type(model: type[BaseModel], name: str) -> Callable[[str], Any] | None:
    """For a list field, an argparse `type` that reads 'a,b,c' and checks it as the field."""
    info = model.model_fields[name]
    lists = [a for a in (info.annotation, *typing.get_args(info.annotation)) if a is not None]
    if not any(typing.get_origin(a) is list for a in lists):
        return None
    check = arguments.field_type(model, name)

    def parse(text: str) -> Any:
        return check([part.strip() for part in text.split(",") if part.strip()])

    parse.__name__ = name
    return parse


def given(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The fields of `model` that the command line set (flags left out are None)."""
    return {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) is not None
    }


def settings_table(model: type[BaseModel], env_prefix: str | None = None) -> str:
    """A Markdown table of `model`'s fields: flag, environment variable, default, what it does
    (the docs' copy is checked against it by a test)."""
    head = "| flag | environment variable | default | what |\n| --- | --- | --- | --- |\n"
    if env_prefix is None:
        head = "| flag | default | what |\n| --- | --- | --- |\n"
    rows = []
    for name, info in model.model_fields.items():
        default = shown_default(model, name)
        if default is None:
            default = ("on" if info.default else "off") if info.annotation is bool else "none"
        options = choices(model, name)
        what = (info.description or "").replace("|", "\\|")
        if options:
            what += f" (one of {', '.join(map(str, options))})"
        cells = [f"`{flag_name(model, name)}`"]
        if env_prefix is not None:
            cells.append(f"`{env_prefix}{name.upper()}`")
        cells += [default.replace("|", "\\|"), what]
        rows.append("| " + " | ".join(cells) + " |\n")
    return head + "".join(rows)
