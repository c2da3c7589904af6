"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# mkstemp/mkdtemp create private (0600/0700) entries; published files get the usual umask modes.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def check_folder_path(path: str | os.PathLike[str]) -> None:
    """ValueError unless a folder can be at `path`: it is not a file, and not under one."""
    target = Path(path)
    for part in (target, *target.parents):
        if part.exists():
            if not part.is_dir():
                raise ValueError(f"{part} is a file, not a folder")
            return


def first_missing(path: str | os.PathLike[str]) -> Path | None:
    """The outermost folder of `path` that does not exist yet (what mkdir(parents=True) makes)."""
    target = Path(path).absolute()
    missing = None
    for part in (target, *target.parents):
        if part.exists():
            break
        missing = part
    return missing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, FILE_MODE)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """JSON with 2-space indent; NaN and inf are refused (they are not JSON)."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode())


def cache_dir() -> Path:
    """Where made data is kept between runs: $SKIPFOLD_CACHE, else $XDG_CACHE_HOME/skipfold,
    else ~/.cache/skipfold."""
    if os.environ.get("SKIPFOLD_CACHE"):
        return Path(os.environ["SKIPFOLD_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skipfold"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
