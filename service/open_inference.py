"""The Open Inference Protocol's logic that both transports share: model metadata and
configuration, the checks on a request's tensors, and Triton's classification and BYTES
outputs. HTTP (`service.v2`) and gRPC (`service.grpc_server`) only read and write their own
wire formats around it, so a request is refused for the same reason with the same words on
either."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from skipfold.service.failures import ApiError
from skipfold.service.served_model import ServedModel
from skipfold.service.signature import Signature, TensorSpec

EXTENSIONS = [
    "binary_tensor_data", "classification", "model_configuration", "model_repository",
]  # fmt: skip


def model_metadata(versions: list[int], served: ServedModel) -> dict:
    """The protocol's model metadata (HTTP's JSON and gRPC's message alike)."""
    signature = served.signature
    return {
        "name": served.name,
        "versions": [str(v) for v in sorted(versions)],
        "platform": "onnxruntime_onnx",
        "inputs": [_described(signature, t) for t in signature.inputs],
        "outputs": [_described(signature, t) for t in signature.outputs],
    }


def _described(signature: Signature, tensor: TensorSpec) -> dict:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": signature.shape(tensor)}


def model_config(served: ServedModel) -> dict:
    """Triton's model configuration of a served model, as JSON (gRPC: the same fields), as
    checked against the graph or completed from it."""
    signature = served.signature
    image = served.input_size is not None
    return {
        "name": served.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": served.max_batch_size,
        "input": [
            {"name": t.name, "data_type": f"TYPE_{t.datatype}", "dims": list(t.dims)}
            | ({"format": "FORMAT_NHWC"} if image else {})
            for t in signature.inputs
        ],
        "output": [
            {"name": t.name, "data_type": f"TYPE_{t.datatype}", "dims": list(t.dims)}
            for t in signature.outputs
        ],
        "parameters": {k: {"string_value": v} for k, v in served.metadata.items()},
    } | ({"dynamic_batching": {}} if signature.dynamic_batching else {})


def check_outputs(served: ServedModel, names: list[str]) -> None:
    """ApiError (400) for a requested output the model does not have (HTTP and gRPC)."""
    for name in names:
        if name not in served.output_names:
            raise ApiError(
                400,
                f"unknown output {name!r}; model {served.name!r} has "
                f"{', '.join(served.output_names)}",
            )


@dataclass(frozen=True)
class CheckedInput:
    """One tensor of a request, fitting the model input it feeds."""

    position: int  # in the request
    spec: TensorSpec
    shape: list[int]

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))


def check_inputs(
    served: ServedModel, tensors: list[tuple[str, str, list[int]]]
) -> list[CheckedInput]:
    """The request's tensors (name, datatype, shape) in the model's input order; ApiError (400)
    naming the first that does not fit the model (HTTP and gRPC alike)."""
    signature, names = served.signature, served.input_names
    given: dict[str, int] = {}
    for position, (name, _, _) in enumerate(tensors):
        if name not in names:
            raise ApiError(
                400, f"unknown input {name!r}; model {served.name!r} takes {_list(names)}"
            )
        if name in given:
            raise ApiError(400, f"input {name!r} given twice")
        given[name] = position
    missing = [name for name in names if name not in given]
    if missing:
        raise ApiError(400, f"model {served.name!r} takes {_list(names)}; missing {_list(missing)}")
    checked, batch = [], None
    for spec in signature.inputs:
        position = given[spec.name]
        _, datatype, shape = tensors[position]
        if datatype != spec.datatype:
            raise ApiError(400, f"input {spec.name!r} must be {spec.datatype}, got {datatype!r}")
        within = shape[1:] if signature.batched else shape
        if not spec.fits(within) or (signature.batched and (not shape or shape[0] < 1)):
            dims = ", ".join("*" if d == -1 else str(d) for d in spec.dims)
            expected = f"[N, {dims}]" if signature.batched else f"[{dims}]"
            raise ApiError(400, f"input {spec.name!r} shape must be {expected}, got {shape}")
        if signature.batched:
            if batch is not None and shape[0] != batch:
                raise ApiError(400, f"inputs differ in batch size: {batch} and {shape[0]}")
            batch = shape[0]
        checked.append(CheckedInput(position, spec, list(shape)))
    if batch is not None and batch > served.max_batch_size:
        raise ApiError(
            400,
            f"batch of {batch} exceeds the max_batch_size {served.max_batch_size} of model "
            f"{served.name!r}",
        )
    return checked


def _list(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def typed_values(values: np.ndarray, tensor: CheckedInput, field: str) -> np.ndarray:
    """Values sent as numbers (JSON `data`, gRPC typed contents) as the input's type, every one
    checked: booleans for BOOL, integers in the type's range, numbers for floats."""
    dtype = tensor.spec.dtype
    values = values.reshape(-1)
    if values.size != tensor.count:
        raise ApiError(
            400,
            f"input {field} holds {values.size} values; shape {tensor.shape} needs {tensor.count}",
        )
    accepted = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}[dtype.kind]
    if values.size and values.dtype.kind not in accepted:
        raise ApiError(
            400, f"input {tensor.spec.name!r} ({tensor.spec.datatype}) takes {value_kind(tensor)}"
        )
    if values.size and dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise ApiError(
                400,
                f"{tensor.spec.datatype} input values must be integers in "
                f"{limits.min}..{limits.max}",
            )
    if values.size and dtype.kind == "f" and np.abs(values).max() > np.finfo(dtype).max:
        raise ApiError(
            400, f"{tensor.spec.datatype} input values must lie within ±{np.finfo(dtype).max:.6g}"
        )
    return values.astype(dtype).reshape(tensor.shape)


def value_kind(tensor: CheckedInput) -> str:
    """What the input's values are, in words, for error messages."""
    return {"b": "booleans", "u": "integers", "i": "integers", "f": "numbers"}[
        tensor.spec.dtype.kind
    ]


def raw_values(raw: bytes, tensor: CheckedInput, what: str) -> np.ndarray:
    """Raw little-endian bytes as the input's tensor; ApiError if their length does not fit."""
    dtype = tensor.spec.dtype.newbyteorder("<")
    needed = tensor.count * dtype.itemsize
    if len(raw) != needed:
        raise ApiError(
            400,
            f"{what} holds {len(raw)} bytes; shape {tensor.shape} of "
            f"{tensor.spec.datatype} needs {needed}",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(tensor.shape)


def classification(values: np.ndarray, k: int, classes: list[str]) -> np.ndarray:
    """Triton's classification output: top k of each row as 'score:index:label' strings
    ('score:index' where the class has no name). ApiError for an output that is not a batch of
    score rows."""
    if values.ndim != 2 or values.dtype.kind not in "iuf":
        raise ApiError(
            400,
            f"classification needs an output of numeric rows; this one is {values.dtype} "
            f"{list(values.shape)}",
        )
    k = min(k, values.shape[1])
    rows = []
    for row in values:
        order = np.argsort(-row, kind="stable")[:k]
        rows.append(
            [
                f"{row[i]:f}:{i}:{classes[i]}" if i < len(classes) else f"{row[i]:f}:{i}"
                for i in order
            ]
        )
    return np.array(rows, dtype=object)


def bytes_tensor(values: np.ndarray) -> bytes:
    """BYTES elements in the binary extension: 4-byte little-endian length + the bytes."""
    parts = []
    for item in values.reshape(-1):
        encoded = str(item).encode()
        parts.append(struct.pack("<I", len(encoded)) + encoded)
    return b"".join(parts)
