"""A model repository in Triton Inference Server's layout: its one definition, written and read.

    <repo>/<name>/config.pbtxt          platform onnxruntime_onnx, I/O names, types and dims
    <repo>/<name>/labels.txt            class names, one per line (Triton's classification labels)
    <repo>/<name>/<version>/model.onnx  1, 2, 3, ...: every export of a name adds a version

Export publishes into it; the server and the benchmark read it, all through `ModelRepository`.
A new model folder, or a new version folder, is assembled under a hidden temporary name and
renamed into place in one step; an existing version is never rewritten. Triton can serve the
repository as it is (`tritonserver --model-repository REPO`), and so can `skipfold serve`.
config.pbtxt and labels.txt are `formats.model_config`'s.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from skipfold.common.io import DIR_MODE, check_folder_path, write_bytes_atomic
from skipfold.formats.model_config import CONFIG_FILE, LABELS_FILE, ModelConfig, RepositoryError

MODEL_FILE = "model.onnx"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


def versions(model_dir: Path) -> list[int]:
    """The version numbers present under a model folder, ascending."""
    if not model_dir.is_dir():
        return []
    found = [
        int(p.name)
        for p in model_dir.iterdir()
        if p.name.isascii() and p.name.isdigit() and int(p.name) > 0 and (p / MODEL_FILE).is_file()
    ]
    return sorted(found)


def _numbered(model_dir: Path) -> list[int]:
    """Every numbered folder, holding a model or not: a new version takes none of them."""
    return [int(p.name) for p in model_dir.iterdir() if p.name.isascii() and p.name.isdigit()]


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def writable_repository(path: str | Path) -> Path:
    """`path` if a repository can be created or extended there; else ValueError."""
    ModelRepository(path).check_writable()
    return Path(path)


def _model_config(
    name: str,
    classes: Sequence[str],
    input_size: Sequence[int],
    max_batch_size: int,
    parameters: Mapping[str, str] | None,
) -> tuple[ModelConfig, bytes]:
    """The config.pbtxt and labels.txt a model of these properties gets; ValueError if bad."""
    check_name(name)
    if max_batch_size < 0:
        raise ValueError(
            f"max_batch_size must be 0 (a fixed batch of one) or more, got {max_batch_size}"
        )
    if any("\n" in c for c in classes):
        raise ValueError("class names cannot contain line breaks")
    height, width = input_size
    config = ModelConfig(
        name,
        max_batch_size,
        (int(height), int(width)),
        len(classes),
        parameters=tuple(sorted((parameters or {}).items())),
    )
    return config, "".join(f"{c}\n" for c in classes).encode()


class ModelRepository:
    """A Triton-layout model repository on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def check_writable(self) -> None:
        """Refuse, before any work, a repository path that is a file or lies under one."""
        try:
            check_folder_path(self.path)
        except ValueError as exc:
            raise ValueError(f"model repository {self.path}: {exc}") from None

    def model_dir(self, name: str) -> Path:
        return self.path / check_name(name)

    def model_file(self, name: str, version: int) -> Path:
        return self.model_dir(name) / str(version) / MODEL_FILE

    def versions(self, name: str) -> list[int]:
        return versions(self.model_dir(name))

    def models(self) -> dict[str, list[int]]:
        """Every model with at least one version, by name (config.pbtxt may be missing: the
        server completes it from the graph, as Triton's auto-complete does)."""
        if not self.path.is_dir():
            raise RepositoryError(
                f"model repository {self.path} does not exist (create one with "
                "'skipfold export runs/NAME --repo REPO', or run 'skipfold demo')"
            )
        found = {}
        for model_dir in sorted(self.path.iterdir()):
            if model_dir.name.startswith(".") or not model_dir.is_dir():
                continue
            numbers = versions(model_dir)
            if numbers:
                found[model_dir.name] = numbers
        return found

    def latest(self) -> dict[str, Path]:
        """name -> the latest version's model.onnx, for every model."""
        return {name: self.model_file(name, numbers[-1]) for name, numbers in self.models().items()}

    def config(self, name: str) -> ModelConfig | None:
        """The model's config.pbtxt; None where there is none (to complete from the graph)."""
        path = self.model_dir(name) / CONFIG_FILE
        if not path.is_file():
            return None
        return ModelConfig.parse(path.read_text(), source=str(path))

    def labels(self, name: str) -> list[str] | None:
        path = self.model_dir(name) / LABELS_FILE
        return path.read_text().splitlines() if path.is_file() else None

    def publish(
        self,
        name: str,
        model_bytes: bytes,
        *,
        classes: Sequence[str],
        input_size: Sequence[int],
        max_batch_size: int,
        parameters: Mapping[str, str] | None = None,
    ) -> tuple[int, Path]:
        """Add `model_bytes` as the next version of `name`; return (version, model.onnx path).
        `parameters` go into config.pbtxt's `parameters` (Triton's string map)."""
        config, labels = _model_config(name, classes, input_size, max_batch_size, parameters)
        self.check_writable()
        self.path.mkdir(parents=True, exist_ok=True)
        model_dir = self.path / name
        if not model_dir.exists():
            published = self._publish_new_model(model_dir, config, labels, model_bytes)
            if published:
                return published
        self._check_compatible(model_dir, config, labels)
        if not (model_dir / LABELS_FILE).is_file():  # a folder made without labels.txt
            write_bytes_atomic(model_dir / LABELS_FILE, labels)
        return self._publish_version(model_dir, model_bytes)

    def check_publishable(
        self,
        name: str,
        *,
        classes: Sequence[str],
        input_size: Sequence[int],
        max_batch_size: int,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        """What `publish` would refuse, said before the work that makes the model: a bad name,
        an unwritable repository, or a model of that name with another signature."""
        config, labels = _model_config(name, classes, input_size, max_batch_size, parameters)
        self.check_writable()
        if (self.path / name).exists():
            self._check_compatible(self.path / name, config, labels)

    def _publish_new_model(
        self, model_dir: Path, config: ModelConfig, labels: bytes, model_bytes: bytes
    ) -> tuple[int, Path] | None:
        """The model folder with version 1, renamed into place; None if another export won."""
        staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", suffix=".tmp", dir=self.path))
        try:
            os.chmod(staging, DIR_MODE)
            _write_durably(staging / CONFIG_FILE, config.to_pbtxt().encode())
            _write_durably(staging / LABELS_FILE, labels)
            (staging / "1").mkdir()
            _write_durably(staging / "1" / MODEL_FILE, model_bytes)
            os.rename(staging, model_dir)
            return 1, model_dir / "1" / MODEL_FILE
        except OSError:
            if not model_dir.is_dir():  # not a lost race with another export: a real failure
                raise
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _publish_version(model_dir: Path, model_bytes: bytes) -> tuple[int, Path]:
        staging = Path(tempfile.mkdtemp(prefix=".version.", suffix=".tmp", dir=model_dir))
        try:
            os.chmod(staging, DIR_MODE)
            _write_durably(staging / MODEL_FILE, model_bytes)
            while True:
                version = max(_numbered(model_dir), default=0) + 1
                try:
                    os.rename(staging, model_dir / str(version))
                    return version, model_dir / str(version) / MODEL_FILE
                except OSError:
                    if not (model_dir / str(version)).exists():
                        raise
                    # another export took this number first: take the next one
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _check_compatible(model_dir: Path, config: ModelConfig, labels: bytes) -> None:
        """Versions of one model share its config and labels (as in Triton): refuse a mismatch,
        and a config that cannot be read, as a ValueError. Writes nothing."""
        config_path, labels_path = model_dir / CONFIG_FILE, model_dir / LABELS_FILE
        if not model_dir.is_dir() or not config_path.is_file():
            raise ValueError(f"{model_dir} exists but has no {CONFIG_FILE}: not a model folder")
        try:
            existing = ModelConfig.parse(config_path.read_text(), source=str(config_path))
        except RepositoryError as exc:
            raise ValueError(str(exc)) from None
        if existing.signature() != config.signature() or (
            labels_path.is_file() and labels_path.read_bytes() != labels
        ):
            raise ValueError(
                f"{model_dir} holds a model with a different signature (classes, input size, "
                "max batch size, precision or test-time flips); export under another --name"
            )
