"""The Open Inference Protocol's logic that both transports share: model metadata and
configuration, the checks on a request's tensors, and Triton's classification and BYTES
outputs. HTTP (`service.v2`) and gRPC (`service.grpc_server`) only read and write their own
wire formats around it, so a request is refused for the same reason with the same words on
either."""

from __future__ import annotations

import struct

import numpy as np

from skipfold.service.failures import ApiError
from skipfold.service.served_model import ServedModel

EXTENSIONS = [
    "binary_tensor_data", "classification", "model_configuration", "model_repository",
]  # fmt: skip
DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8"}


def _tensor_metadata(name: str, datatype: str, dims: list[int]) -> dict:
    return {"name": name, "datatype": datatype, "shape": [-1, *dims]}


def model_metadata(versions: list[int], served: ServedModel) -> dict:
    """The protocol's model metadata (HTTP's JSON and gRPC's message alike)."""
    classes = len(served.classes)
    return {
        "name": served.name,
        "versions": [str(v) for v in sorted(versions)],
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor_metadata(served.input_name, "UINT8", [*served.input_size, 3])],
        "outputs": [_tensor_metadata(n, "FP32", [classes]) for n in served.output_names],
    }


def model_config(served: ServedModel) -> dict:
    """Triton's model configuration of a served model, as JSON (gRPC: the same fields)."""
    classes = len(served.classes)
    return {
        "name": served.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": served.max_batch_size,
        "input": [
            {
                "name": served.input_name,
                "data_type": "TYPE_UINT8",
                "format": "FORMAT_NHWC",
                "dims": [*served.input_size, 3],
            }
        ],
        "output": [
            {"name": n, "data_type": "TYPE_FP32", "dims": [classes]} for n in served.output_names
        ],
        "parameters": {k: {"string_value": v} for k, v in served.metadata.items()},
    }


def check_outputs(served: ServedModel, names: list[str]) -> None:
    """ApiError (400) for a requested output the model does not have (HTTP and gRPC)."""
    for name in names:
        if name not in served.output_names:
            raise ApiError(
                400,
                f"unknown output {name!r}; model {served.name!r} has "
                f"{', '.join(served.output_names)}",
            )


def check_input(
    served: ServedModel, inputs: int, name: str, datatype: str, shape: list[int]
) -> int:
    """The number of values the one input tensor described must hold; ApiError (400) if the
    description does not fit the model (HTTP and gRPC alike)."""
    if inputs != 1:
        raise ApiError(400, f"model {served.name!r} takes exactly one input, {served.input_name!r}")
    if name != served.input_name:
        raise ApiError(
            400, f"unknown input {name!r}; model {served.name!r} takes {served.input_name!r}"
        )
    if datatype != "UINT8":
        raise ApiError(400, f"input {served.input_name!r} must be UINT8, got {datatype!r}")
    expected = [*served.input_size, 3]
    if len(shape) != 4 or shape[1:] != expected or shape[0] < 1:
        raise ApiError(
            400, f"input shape must be [N, {', '.join(map(str, expected))}], got {shape}"
        )
    if served.max_batch_size and shape[0] > served.max_batch_size:
        raise ApiError(
            400,
            f"batch of {shape[0]} exceeds the max_batch_size {served.max_batch_size} of model "
            f"{served.name!r}",
        )
    return shape[0] * int(np.prod(expected))


def classification(values: np.ndarray, k: int, classes: list[str]) -> np.ndarray:
    """Triton's classification output: top k of each row as 'score:index:label' strings."""
    k = min(k, values.shape[1])
    rows = []
    for row in values:
        order = np.argsort(-row, kind="stable")[:k]
        rows.append([f"{row[i]:f}:{i}:{classes[i]}" for i in order])
    return np.array(rows, dtype=object)


def bytes_tensor(values: np.ndarray) -> bytes:
    """BYTES elements in the binary extension: 4-byte little-endian length + the bytes."""
    parts = []
    for item in values.reshape(-1):
        encoded = str(item).encode()
        parts.append(struct.pack("<I", len(encoded)) + encoded)
    return b"".join(parts)
