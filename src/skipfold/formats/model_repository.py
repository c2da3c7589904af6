"""A model repository in Triton Inference Server's layout: its one definition, written and read.

    <repo>/<name>/config.pbtxt          platform onnxruntime_onnx, I/O names, types and dims
    <repo>/<name>/labels.txt            class names, one per line (Triton's classification labels)
    <repo>/<name>/<version>/model.onnx  1, 2, 3, ...: every export of a name adds a version

Export publishes into it; the server and the benchmark read it, all through `ModelRepository`.
A new model folder, or a new version folder, is assembled under a hidden temporary name and
renamed into place in one step; an existing version is never rewritten. Triton can serve the
repository as it is (`tritonserver --model-repository REPO`), and so can `skipfold serve`.
config.pbtxt is protobuf text format: written and parsed by protobuf itself, against the part
of Triton's ModelConfig schema that skipfold uses (other fields a user adds are kept by Triton
and skipped here).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skipfold.common.io import DIR_MODE, check_folder_path, write_bytes_atomic

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.onnx"
PLATFORM = "onnxruntime_onnx"
# The graph's interface, as skipfold export writes it and the server expects it.
INPUT_NAME = "images"  # uint8 [N, H, W, 3]
OUTPUT_NAMES = ("logits", "probabilities")  # float32 [N, classes]
PROBABILITIES = "probabilities"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Triton's DataType enum (model_config.proto), in its order: the numbers are the protocol's.
DATA_TYPES = (
    "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
    "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
    "TYPE_FP64", "TYPE_STRING", "TYPE_BF16",
)  # fmt: skip
FORMATS = ("FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW")


class RepositoryError(RuntimeError):
    """The repository, or a model in it, is not what skipfold can serve or extend."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


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


# The part of Triton's ModelConfig (model_config.proto) that skipfold writes and reads:
# message -> its fields as (name, type, repeated). The field numbers do not matter in text format.
_SCHEMA: dict[str, list[tuple[str, str, bool]]] = {
    "All": [],
    "Opaque": [],  # a message skipfold does not read: its fields are skipped
    "VersionPolicy": [("all", "All", False)],
    # Triton's `map<string, ModelParameter> parameters`: a map is its entries in text format
    "ModelParameter": [("string_value", "string", False)],
    "ParameterEntry": [("key", "string", False), ("value", "ModelParameter", False)],
    "Input": [
        ("name", "string", False),
        ("data_type", "DataType", False),
        ("format", "Format", False),
        ("dims", "int64", True),
    ],
    "Output": [
        ("name", "string", False),
        ("data_type", "DataType", False),
        ("dims", "int64", True),
        ("label_filename", "string", False),
    ],
    "ModelConfig": [
        ("name", "string", False),
        ("platform", "string", False),
        ("backend", "string", False),
        ("max_batch_size", "int32", False),
        ("version_policy", "VersionPolicy", False),
        ("input", "Input", True),
        ("output", "Output", True),
        ("parameters", "ParameterEntry", True),
        # Lists of messages Triton users add: declared so that their `[ {...} ]` form parses.
        ("instance_group", "Opaque", True),
        ("model_warmup", "Opaque", True),
        ("batch_input", "Opaque", True),
        ("batch_output", "Opaque", True),
    ],
}
_ENUMS = {"DataType": DATA_TYPES, "Format": FORMATS}


@functools.cache
def _config_message() -> Any:
    """The ModelConfig message class of `_SCHEMA`, built with protobuf's own descriptors."""
    from google.protobuf import descriptor_pb2, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    package = "skipfold.triton"
    file = descriptor_pb2.FileDescriptorProto(
        name="skipfold_triton_model_config.proto", package=package, syntax="proto3"
    )
    for enum_name, values in _ENUMS.items():
        enum = file.enum_type.add(name=enum_name)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    for message_name, fields in _SCHEMA.items():
        message = file.message_type.add(name=message_name)
        for number, (name, kind, repeated) in enumerate(fields, start=1):
            added = message.field.add(name=name, number=number)
            added.label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            if kind in _ENUMS or kind in _SCHEMA:
                added.type = field.TYPE_ENUM if kind in _ENUMS else field.TYPE_MESSAGE
                added.type_name = f".{package}.{kind}"
            else:
                added.type = getattr(field, f"TYPE_{kind.upper()}")
    return message_factory.GetMessages([file])[f"{package}.ModelConfig"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """config.pbtxt of an image classifier: uint8 NHWC images in, float32 class scores out."""

    name: str
    max_batch_size: int  # 0: the model takes no batch dimension (Triton's convention)
    input_size: tuple[int, int] | None  # (height, width); None if not an image input
    num_classes: int | None  # None if the outputs do not say
    input_name: str = INPUT_NAME
    output_names: tuple[str, ...] = OUTPUT_NAMES
    parameters: tuple[tuple[str, str], ...] = ()  # e.g. (("precision", "int8"),)

    def signature(self) -> tuple:
        """What the versions of one model must share: its inputs, outputs, batch size,
        precision and test-time flips (parameters users add for Triton, such as thread counts,
        may differ)."""
        given = dict(self.parameters)
        computes = (given.get("precision", "fp32"), given.get("test_flip", "false"))
        return (*dataclasses.astuple(self)[:-1], *computes)

    def to_pbtxt(self) -> str:
        from google.protobuf import text_format

        if self.input_size is None or self.num_classes is None:
            raise ValueError("an image classifier's config needs its input size and classes")
        config = _config_message()(
            name=self.name,
            platform=PLATFORM,
            max_batch_size=self.max_batch_size,
        )
        config.version_policy.all.SetInParent()  # every version folder is servable
        config.input.add(
            name=self.input_name,
            data_type=DATA_TYPES.index("TYPE_UINT8"),
            format=FORMATS.index("FORMAT_NHWC"),
            dims=[*self.input_size, 3],
        )
        for output in self.output_names:
            config.output.add(
                name=output,
                data_type=DATA_TYPES.index("TYPE_FP32"),
                dims=[self.num_classes],
                label_filename=LABELS_FILE if output == PROBABILITIES else "",
            )
        for key, value in self.parameters:
            config.parameters.add(key=key).value.string_value = value
        return text_format.MessageToString(config, use_short_repeated_primitives=True)

    @classmethod
    def parse(cls, text: str, source: str = CONFIG_FILE) -> ModelConfig:
        from google.protobuf import text_format

        try:
            config = text_format.Parse(text, _config_message()(), allow_unknown_field=True)
        except text_format.ParseError as exc:
            raise RepositoryError(f"{source} is not a valid config.pbtxt: {exc}") from None
        # Triton completes a minimal config from the ONNX file itself: so may the reader.
        image = len(config.input) == 1 and len(config.input[0].dims) == 3
        classes = {int(o.dims[-1]) for o in config.output if o.dims}
        return cls(
            name=config.name,
            max_batch_size=config.max_batch_size,
            input_size=(int(config.input[0].dims[0]), int(config.input[0].dims[1]))
            if image
            else None,
            num_classes=classes.pop() if len(classes) == 1 else None,
            input_name=config.input[0].name if config.input else INPUT_NAME,
            output_names=tuple(o.name for o in config.output) or OUTPUT_NAMES,
            parameters=tuple(sorted((p.key, p.value.string_value) for p in config.parameters)),
        )


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
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
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
        """Every model with a config.pbtxt and at least one version, by name."""
        if not self.path.is_dir():
            raise RepositoryError(
                f"model repository {self.path} does not exist (create one with "
                "'skipfold export runs/NAME --repo REPO', or run 'skipfold demo')"
            )
        found = {}
        for model_dir in sorted(self.path.iterdir()):
            if model_dir.name.startswith(".") or not (model_dir / CONFIG_FILE).is_file():
                continue
            numbers = versions(model_dir)
            if numbers:
                found[model_dir.name] = numbers
        return found

    def latest(self) -> dict[str, Path]:
        """name -> the latest version's model.onnx, for every model."""
        return {name: self.model_file(name, numbers[-1]) for name, numbers in self.models().items()}

    def config(self, name: str) -> ModelConfig:
        path = self.model_dir(name) / CONFIG_FILE
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
