"""The models a server holds: read from a Triton-layout repository written by skipfold export.

Torch-free and onnx-free: everything comes from the files and ONNX Runtime's view of them
(the graph's metadata_props carry classes, variant and the rest).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.runtime import Runner, create_session, resolve_providers
from service.settings import Settings

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.pbtxt"


class RepositoryError(RuntimeError):
    """The repository cannot be served as configured: the server must not start."""


class ModelNotFound(LookupError):
    """Unknown model name or version (HTTP 404)."""


@dataclass
class ServedModel:
    """One version of one model, loaded and ready to run."""

    name: str
    version: int
    path: Path
    runner: Runner
    classes: list[str]
    input_size: tuple[int, int]
    max_batch_size: int
    metadata: dict[str, str] = field(default_factory=dict)
    # One image's run time, measured in the warm-up (the fastest run); inf until measured.
    seconds_per_image: float = float("inf")

    @property
    def input_name(self) -> str:
        return self.runner.input_name

    @property
    def output_names(self) -> list[str]:
        return self.runner.output_names

    def describe(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "name": self.name,
            "version": self.version,
            "variant": meta.get("variant"),
            "depth": _int_or_none(meta.get("depth")),
            "width": _int_or_none(meta.get("width")),
            "folded": {"true": True, "false": False}.get(meta.get("folded", "")),
            "classes": self.classes,
            "input_shape": [-1, *self.input_size, 3],
            "max_batch_size": self.max_batch_size,
            "test_accuracy": _float_or_none(meta.get("test_accuracy")),
            "execution_providers": self.runner.providers,
        }


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.lstrip("-").isdigit() else None


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _max_batch_size(model_dir: Path) -> int:
    config = model_dir / CONFIG_FILE
    match = re.search(r"^\s*max_batch_size\s*:\s*(\d+)", config.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def model_versions(model_dir: Path) -> list[int]:
    """The version numbers under a model folder that hold a model.onnx, ascending."""
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.name.isdigit() and int(p.name) > 0 and (p / MODEL_FILE).is_file()
    )


def load_model(model_dir: Path, version: int, settings: Settings) -> ServedModel:
    path = model_dir / str(version) / MODEL_FILE
    providers = resolve_providers(settings.device)
    try:
        session = create_session(
            path,
            providers,
            settings.intra_op_threads,
            settings.optimization_level,
            settings.device,
        )
    except RuntimeError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RepositoryError(f"{path}: ONNX Runtime cannot load it: {exc}") from None
    runner = Runner(session)
    (image_input,) = session.get_inputs() if len(session.get_inputs()) == 1 else (None,)
    shape = getattr(image_input, "shape", None)
    if (
        image_input is None
        or image_input.type != "tensor(uint8)"
        or len(shape) != 4
        or shape[3] != 3
        or not all(isinstance(d, int) for d in shape[1:3])
    ):
        raise RepositoryError(
            f"{path}: not an image model this server can run: it needs one uint8 input "
            f"[N, H, W, 3] (as skipfold export writes), found "
            f"{[(i.name, i.type, i.shape) for i in session.get_inputs()]}"
        )
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    num_classes = session.get_outputs()[0].shape[-1]
    classes = _classes(metadata, model_dir, num_classes)
    return ServedModel(
        name=model_dir.name,
        version=version,
        path=path,
        runner=runner,
        classes=classes,
        input_size=(int(shape[1]), int(shape[2])),
        max_batch_size=_max_batch_size(model_dir),
        metadata=metadata,
    )


def _classes(metadata: dict[str, str], model_dir: Path, num_classes: Any) -> list[str]:
    if "classes" in metadata:
        return list(json.loads(metadata["classes"]))
    labels = model_dir / "labels.txt"
    if labels.is_file():
        return labels.read_text().splitlines()
    if isinstance(num_classes, int):
        return [str(i) for i in range(num_classes)]
    raise RepositoryError(f"{model_dir}: no class names (metadata 'classes' or labels.txt)")


class ModelRegistry:
    """name -> version -> ServedModel, plus which model answers when none is named."""

    def __init__(self, models: dict[str, dict[int, ServedModel]], default: str) -> None:
        self.models = models
        self.default = default

    @classmethod
    def load(cls, settings: Settings) -> ModelRegistry:
        repo = settings.repository
        if not repo.is_dir():
            raise RepositoryError(
                f"model repository {repo} does not exist (create one with "
                "'skipfold export runs/NAME --repo REPO', or run 'skipfold demo')"
            )
        available = {
            p.name: model_versions(p)
            for p in sorted(repo.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_FILE).is_file()
        }
        available = {name: versions for name, versions in available.items() if versions}
        if not available:
            raise RepositoryError(
                f"model repository {repo} holds no models (each needs NAME/config.pbtxt and "
                "NAME/VERSION/model.onnx; write them with 'skipfold export')"
            )
        selection = settings.pinned_versions() or {name: [] for name in available}
        models: dict[str, dict[int, ServedModel]] = {}
        for name, pinned in selection.items():
            if name not in available:
                raise RepositoryError(
                    f"model {name!r} is not in {repo} (it has: {', '.join(available)})"
                )
            missing = sorted(set(pinned) - set(available[name]))
            if missing:
                raise RepositoryError(
                    f"model {name!r} has no version {missing[0]} in {repo} "
                    f"(it has: {', '.join(map(str, available[name]))})"
                )
            versions = pinned or available[name][-1:]
            models[name] = {v: load_model(repo / name, v, settings) for v in versions}
        default = settings.default_model or next(iter(models))
        if default not in models:
            raise RepositoryError(
                f"default model {default!r} is not served (serving: {', '.join(models)})"
            )
        return cls(models, default)

    def get(self, name: str | None = None, version: int | str | None = None) -> ServedModel:
        name = name or self.default
        versions = self.models.get(name)
        if versions is None:
            raise ModelNotFound(f"unknown model {name!r}; serving: {', '.join(self.models)}")
        if version in (None, ""):
            return versions[max(versions)]
        try:
            number = int(version)
        except (TypeError, ValueError):
            number = -1
        if number not in versions:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r} loaded; "
                f"loaded: {', '.join(map(str, sorted(versions)))}"
            )
        return versions[number]

    def all(self) -> list[ServedModel]:
        return [m for versions in self.models.values() for m in versions.values()]

    def warm_up(self, runs: int) -> None:
        """Run every model a few times, so the first request does not pay for allocations,
        and time one image (what the engine needs to decide where a call runs)."""
        for model in self.all():
            sizes = {1, max(1, min(model.max_batch_size, 8))}
            for size in sorted(sizes):
                images = np.zeros((size, *model.input_size, 3), dtype=np.uint8)
                for _ in range(runs):
                    started = time.perf_counter()
                    model.runner(images)
                    if size == 1:
                        elapsed = time.perf_counter() - started
                        model.seconds_per_image = min(model.seconds_per_image, elapsed)
