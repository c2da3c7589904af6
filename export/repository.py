"""A model repository in Triton Inference Server's layout, written so nothing is ever half there.

    <repo>/<name>/config.pbtxt          platform onnxruntime_onnx, I/O names, types and dims
    <repo>/<name>/labels.txt            class names, one per line (Triton's classification labels)
    <repo>/<name>/<version>/model.onnx  1, 2, 3, ...: every export of a name adds a version

A new model folder, or a new version folder, is assembled under a hidden temporary name and
renamed into place in one step; an existing version is never rewritten. Triton can serve the
repository as it is (`tritonserver --model-repository REPO`), and so can `skipfold serve`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from skipfold.io import DIR_MODE, write_bytes_atomic

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.onnx"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


def triton_config(
    name: str,
    input_size: Sequence[int],
    num_classes: int,
    max_batch_size: int,
    input_name: str = "images",
    output_names: Sequence[str] = ("logits", "probabilities"),
) -> str:
    """config.pbtxt text: batch dimension implicit (max_batch_size), every version servable."""
    height, width = input_size
    outputs = []
    for output in output_names:
        label = '\n    label_filename: "labels.txt"' if output == "probabilities" else ""
        outputs.append(
            f'  {{\n    name: "{output}"\n    data_type: TYPE_FP32\n'
            f"    dims: [ {num_classes} ]{label}\n  }}"
        )
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        "version_policy: { all: {} }\n"
        "input [\n"
        f'  {{\n    name: "{input_name}"\n    data_type: TYPE_UINT8\n    format: FORMAT_NHWC\n'
        f"    dims: [ {height}, {width}, 3 ]\n  }}\n"
        "]\n"
        "output [\n" + ",\n".join(outputs) + "\n]\n"
    )


def versions(model_dir: Path) -> list[int]:
    """The version numbers present under a model folder, ascending."""
    if not model_dir.is_dir():
        return []
    found = [
        int(p.name)
        for p in model_dir.iterdir()
        if p.name.isdigit() and int(p.name) > 0 and (p / MODEL_FILE).is_file()
    ]
    return sorted(found)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def publish(
    repo: Path,
    name: str,
    model_bytes: bytes,
    *,
    classes: Sequence[str],
    input_size: Sequence[int],
    max_batch_size: int,
) -> tuple[int, Path]:
    """Add `model_bytes` as the next version of `name`; return (version, path of model.onnx)."""
    check_name(name)
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    if any("\n" in c for c in classes):
        raise ValueError("class names cannot contain line breaks")
    config = triton_config(name, input_size, len(classes), max_batch_size)
    labels = "".join(f"{c}\n" for c in classes)
    repo.mkdir(parents=True, exist_ok=True)
    model_dir = repo / name

    if not model_dir.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=repo))
        try:
            os.chmod(staging, DIR_MODE)
            _write_durably(staging / CONFIG_FILE, config.encode())
            _write_durably(staging / LABELS_FILE, labels.encode())
            (staging / "1").mkdir()
            _write_durably(staging / "1" / MODEL_FILE, model_bytes)
            os.rename(staging, model_dir)
            return 1, model_dir / "1" / MODEL_FILE
        except OSError:
            if not model_dir.is_dir():  # not a lost race with another export: a real failure
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    _check_compatible(model_dir, config, labels)
    staging = Path(tempfile.mkdtemp(prefix=".version.", suffix=".tmp", dir=model_dir))
    try:
        os.chmod(staging, DIR_MODE)
        _write_durably(staging / MODEL_FILE, model_bytes)
        while True:
            version = (versions(model_dir) or [0])[-1] + 1
            try:
                os.rename(staging, model_dir / str(version))
                return version, model_dir / str(version) / MODEL_FILE
            except OSError:
                if not (model_dir / str(version)).exists():
                    raise
                # another export took this number first: take the next one
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_compatible(model_dir: Path, config: str, labels: str) -> None:
    """Versions of one model share its config and labels (as in Triton): refuse a mismatch."""
    config_path, labels_path = model_dir / CONFIG_FILE, model_dir / LABELS_FILE
    if not config_path.is_file():
        raise ValueError(f"{model_dir} exists but has no {CONFIG_FILE}: not a model folder")
    if config_path.read_text() != config or (
        labels_path.is_file() and labels_path.read_text() != labels
    ):
        raise ValueError(
            f"{model_dir} holds a model with a different signature (classes, input size or "
            "max batch size); export under another --name"
        )
    if not labels_path.is_file():
        write_bytes_atomic(labels_path, labels.encode())
