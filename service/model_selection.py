"""Which models, and which of their versions, a server loads (`--models`, SKIPFOLD_MODELS)."""

from __future__ import annotations


def parse_selection(text: str) -> dict[str, list[int]]:
    """'bn,skipinit:1:2' -> {'bn': [], 'skipinit': [1, 2]}: models, each optionally pinned to
    versions (an empty list means the latest)."""
    selection: dict[str, list[int]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, *numbers = item.split(":")
        if not name or not all(n.isascii() and n.isdigit() and int(n) > 0 for n in numbers):
            raise ValueError(
                f"invalid model selection {item!r}: use NAME or NAME:VERSION[:VERSION...]"
            )
        selection[name] = [int(n) for n in numbers]
    return selection
