"""config.pbtxt, Triton's model configuration: written (for an image classifier) and parsed (for
any model) by protobuf itself (text format), against the part of Triton's ModelConfig schema that
skipfold uses; other fields a user adds are kept by Triton and skipped here. labels.txt sits
beside it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
PLATFORM = "onnxruntime_onnx"
# The graph's interface, as skipfold export writes it and the server expects it.
INPUT_NAME = "images"  # uint8 [N, H, W, 3]
OUTPUT_NAMES = ("logits", "probabilities")  # float32 [N, classes]
PROBABILITIES = "probabilities"

# Triton's DataType enum (model_config.proto), in its order: the numbers are the protocol's.
DATA_TYPES = (
    "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
    "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
    "TYPE_FP64", "TYPE_STRING", "TYPE_BF16",
)  # fmt: skip
FORMATS = ("FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW")


class RepositoryError(RuntimeError):
    """The repository, or a model in it, is not what skipfold can serve or extend."""


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
        ("dynamic_batching", "Opaque", False),
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
class TensorConfig:
    """One `input` or `output` entry as written: dims without the batch dimension when
    max_batch_size > 0 (Triton's convention), -1 for any size."""

    name: str
    data_type: str  # Triton's, as "TYPE_FP32"
    dims: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """config.pbtxt of an image classifier (uint8 NHWC images in, float32 class scores out), or,
    parsed, of any model: `inputs` and `outputs` then hold its tensors as written."""

    name: str
    # 0: the graph has no batch dimension to batch (Triton's convention): skipfold writes a
    # graph of a fixed batch of one image so, its dims [1, H, W, 3] and [1, classes]
    max_batch_size: int
    input_size: tuple[int, int] | None  # (height, width); None if not an image input
    num_classes: int | None  # None if the outputs do not say
    input_name: str = INPUT_NAME
    output_names: tuple[str, ...] = OUTPUT_NAMES
    parameters: tuple[tuple[str, str], ...] = ()  # e.g. (("precision", "int8"),)
    # Parsed only, as written (empty: to complete from the graph); not compared: the fields
    # above are the interface an export writes
    inputs: tuple[TensorConfig, ...] = dataclasses.field(default=(), compare=False)
    outputs: tuple[TensorConfig, ...] = dataclasses.field(default=(), compare=False)
    dynamic_batching: bool = dataclasses.field(default=False, compare=False)

    def signature(self) -> tuple:
        """What the versions of one model must share: its inputs, outputs, batch size,
        precision and test-time flips (parameters users add for Triton, such as thread counts,
        may differ)."""
        given = dict(self.parameters)
        computes = (given.get("precision", "fp32"), given.get("test_flip", "false"))
        interface = (self.name, self.max_batch_size, self.input_size, self.num_classes)
        return (*interface, self.input_name, self.output_names, *computes)

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
        one = [] if self.max_batch_size > 0 else [1]  # a graph of a fixed batch of one image
        config.input.add(
            name=self.input_name,
            data_type=DATA_TYPES.index("TYPE_UINT8"),
            format=FORMATS.index("FORMAT_NHWC"),
            dims=[*one, *self.input_size, 3],
        )
        for output in self.output_names:
            config.output.add(
                name=output,
                data_type=DATA_TYPES.index("TYPE_FP32"),
                dims=[*one, self.num_classes],
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
        dims = list(config.input[0].dims) if len(config.input) == 1 else []
        if config.max_batch_size == 0 and len(dims) == 4:  # a fixed batch: [1, H, W, 3]
            dims = dims[1:]
        image = len(dims) == 3
        classes = {int(o.dims[-1]) for o in config.output if o.dims}
        return cls(
            name=config.name,
            max_batch_size=config.max_batch_size,
            input_size=(int(dims[0]), int(dims[1])) if image else None,
            num_classes=classes.pop() if len(classes) == 1 else None,
            input_name=config.input[0].name if config.input else INPUT_NAME,
            output_names=tuple(o.name for o in config.output) or OUTPUT_NAMES,
            parameters=tuple(sorted((p.key, p.value.string_value) for p in config.parameters)),
            inputs=tuple(_tensor(t) for t in config.input),
            outputs=tuple(_tensor(t) for t in config.output),
            dynamic_batching=config.HasField("dynamic_batching"),
        )


def _tensor(entry: Any) -> TensorConfig:
    return TensorConfig(entry.name, DATA_TYPES[entry.data_type], tuple(int(d) for d in entry.dims))
