"""The run folder: what a training run leaves behind, with no pickle anywhere. Torch-free.

    config.json         RunConfig: the model, the data and its preprocessing, the recipe
    model.safetensors   the trained weights (and BN running statistics)
    state.safetensors   weights + optimizer momentum + the epoch reached, for --resume
    metrics.jsonl       one JSON line per epoch
    curves.png          loss and accuracy against epoch

This module owns the layout and `RunConfig`, the one type of config.json (validated and
versioned); `skipfold.training.checkpoint` reads and writes the tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skipfold.common.io import atomic_path, write_bytes_atomic
from skipfold.common.messages import one_line
from skipfold.models.spec import ModelSpec
from skipfold.training.config import Standardization, TrainConfig

CONFIG, MODEL, STATE, METRICS, CURVES = (
    "config.json",
    "model.safetensors",
    "state.safetensors",
    "metrics.jsonl",
    "curves.png",
)
SCHEMA_VERSION = 1


class DataSpec(BaseModel):
    """The data a run saw, and the preprocessing export must reproduce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    data_dir: str | None = None
    classes: list[str] = Field(min_length=2)
    mean: list[float] = Field(min_length=3, max_length=3)  # per channel, on the 0..1 scale
    std: list[float] = Field(min_length=3, max_length=3)
    standardize: Standardization = "dataset"
    input_size: tuple[int, int]  # (height, width)
    train_images: int | None = None
    test_images: int | None = None


class RunConfig(BaseModel):
    """config.json: everything that rebuilds the model and its preprocessing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    model: ModelSpec
    data: DataSpec
    recipe: TrainConfig
    software: dict[str, str] = Field(default_factory=dict)
    created: str = ""

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = CONFIG) -> RunConfig:
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{source} is not a skipfold run config (not a JSON object)")
        version = raw.get("schema_version")
        if version is None:  # skipfold 0.1 wrote no version and kept the seed twice
            raw = {k: v for k, v in raw.items() if k != "seed"} | {"schema_version": 1}
        recipe = raw.get("recipe")
        if isinstance(recipe, dict) and "recipe" not in recipe:  # before 0.3: the paper's
            raw = raw | {"recipe": recipe | {"recipe": "paper"}}
        elif version != SCHEMA_VERSION:
            raise ValueError(
                f"{source} has schema_version {version!r}; this skipfold reads {SCHEMA_VERSION} "
                "(a newer skipfold wrote it?)"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(
                f"{source} is not a valid skipfold run config: {one_line(exc)}"
            ) from None


def trained_run(path: str | Path) -> Path:
    """`path` if it holds a finished run (config.json and model.safetensors); else ValueError."""
    RunFolder(path).check_trained()
    return Path(path)


class RunFolder:
    """One run folder on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def holds_run(self) -> bool:
        """Whether anything is in the folder (a new run must start in an empty one)."""
        return self.path.is_dir() and any(self.path.iterdir())

    def check_new(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not a run folder")
        if self.holds_run():
            raise ValueError(
                f"{self.path} already holds a run; pass --resume or choose another --out"
            )

    def check_resumable(self) -> None:
        if not (self / CONFIG).is_file() or not (self / STATE).is_file():
            raise ValueError(
                f"cannot resume {self.path}: it holds no run with a finished epoch "
                f"({CONFIG} and {STATE})"
            )

    def check_continues(self, config: TrainConfig) -> RunConfig:
        """The run's config, if `config` continues it: the same settings but the device."""
        self.check_resumable()
        described = self.read_config()
        if described.recipe.model_copy(update={"device": config.device}) != config:
            changed = [
                name
                for name in TrainConfig.model_fields
                if name != "device" and getattr(described.recipe, name) != getattr(config, name)
            ]
            raise ValueError(
                f"{self.path}: --resume needs the settings of the run it continues "
                f"(changed: {', '.join(changed)})"
            )
        return described

    def check_trained(self) -> None:
        """A run whose weights can be loaded: config.json and model.safetensors."""
        if not self.path.is_dir():
            raise ValueError(f"{self.path} is not a run folder (no such folder)")
        for name in (CONFIG, MODEL):
            if not (self / name).is_file():
                raise ValueError(f"{self.path} is not a finished run: {name} is missing")

    def read_config(self) -> RunConfig:
        path = self / CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run folder: {CONFIG} is missing")
        return RunConfig.from_json(path.read_text(), source=str(path))

    def write_config(self, config: RunConfig) -> None:
        write_bytes_atomic(self / CONFIG, config.to_json().encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self / METRICS
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        write_bytes_atomic(self / METRICS, text.encode())

    def finished_epochs(self) -> int:
        return sum(1 for row in self.read_metrics() if "test_acc" in row)

    def is_complete(self, epochs: int) -> bool:
        return (self / MODEL).is_file() and self.finished_epochs() >= epochs

    def last_test_accuracy(self) -> float | None:
        rows = [row for row in self.read_metrics() if "test_acc" in row]
        return rows[-1]["test_acc"] if rows else None

    def plot_curves(self, rows: list[dict[str, Any]]) -> None:
        """Loss and accuracy against epoch, train and test."""
        from matplotlib.figure import Figure

        rows = [r for r in rows if "train_loss" in r]
        if not rows:
            return
        epochs = [r["epoch"] for r in rows]
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        loss_ax, acc_ax = fig.subplots(1, 2)
        for split in ("train", "test"):
            loss_ax.plot(epochs, [r[f"{split}_loss"] for r in rows], marker=".", label=split)
            acc_ax.plot(epochs, [100 * r[f"{split}_acc"] for r in rows], marker=".", label=split)
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="loss")
        acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for ax in (loss_ax, acc_ax):
            ax.legend()
            ax.grid(alpha=0.3)
        fig.suptitle(self.path.name)
        with atomic_path(self / CURVES) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
