"""What a served model takes and gives: its tensors' names, types and shapes.

Read from the graph (ONNX Runtime's view of it) and the model's config.pbtxt, and checked against
each other as Triton's ONNX Runtime backend checks them: every input of the graph declared, with
its type, and dims that fit the graph's (a config may fix a size the graph leaves open, not the
reverse); outputs may be a subset. Where config.pbtxt is missing, or lists no inputs or outputs,
they are completed from the graph, as Triton's auto-complete does: a graph whose every input and
output has a dynamic first dimension batches, with Triton's default max_batch_size of 4 and
dynamic batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from skipfold.formats.model_config import ModelConfig, RepositoryError, TensorConfig

DEFAULT_MAX_BATCH_SIZE = 4  # Triton's default-max-batch-size for auto-completed models
# The Open Inference Protocol's datatypes skipfold serves, and their NumPy types (BF16 and BYTES
# have none that ONNX Runtime's Python API takes)
NUMPY_TYPES: dict[str, np.dtype] = {
    name: np.dtype(kind)
    for name, kind in [
        ("BOOL", np.bool_), ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
        ("UINT64", np.uint64), ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32),
        ("INT64", np.int64), ("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64),
    ]
}  # fmt: skip
DATATYPES = {dtype: name for name, dtype in NUMPY_TYPES.items()}
# ONNX Runtime's type strings -> the protocol's
_GRAPH_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}  # fmt: skip


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as served: dims without the batch dimension when the model
    batches; -1 where any size goes."""

    name: str
    datatype: str  # the protocol's, as "FP32"
    dims: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return NUMPY_TYPES[self.datatype]

    def fits(self, shape: list[int] | tuple[int, ...]) -> bool:
        """Whether a tensor of `shape` (without the batch dimension) fits these dims."""
        return len(shape) == len(self.dims) and all(
            d == -1 or d == s for d, s in zip(self.dims, shape, strict=True)
        )


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int  # 0: no batch dimension; the dims are the whole shapes
    dynamic_batching: bool = False  # batch requests together (service.inference)

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def shape(self, tensor: TensorSpec) -> list[int]:
        """The tensor's whole shape as the protocol's metadata gives it (-1: the batch)."""
        return [-1, *tensor.dims] if self.batched else list(tensor.dims)

    def image_size(self) -> tuple[int, int] | None:
        """(height, width) for an image classifier as `/predict` serves: one uint8
        [N, H, W, 3] input of fixed H and W (N fixed at 1 where the model has no batch
        dimension), and class scores out; None for any other."""
        if len(self.inputs) != 1 or not self.outputs:
            return None
        image, scores = self.inputs[0].dims, self.outputs[0].dims
        if not self.batched:  # the batch is in the dims: any size, or one image
            if len(image) != 4 or image[0] not in (-1, 1) or len(scores) != 2:
                return None
            image, scores = image[1:], scores[1:]
        if self.inputs[0].datatype != "UINT8" or len(image) != 3 or image[2] != 3:
            return None
        if min(image[:2]) < 1 or self.outputs[0].datatype not in ("FP32", "FP16"):
            return None
        return (image[0], image[1]) if len(scores) == 1 else None

    @property
    def one_at_a_time(self) -> bool:
        """Whether the graph takes exactly one item per call (a fixed batch of one)."""
        return not self.batched and bool(self.inputs) and self.inputs[0].dims[:1] == (1,)


def _graph_tensors(values: list[Any], kind: str, source: str) -> dict[str, TensorSpec]:
    found = {}
    for value in values:
        datatype = _GRAPH_TYPES.get(value.type)
        if datatype is None:
            raise RepositoryError(
                f"{source}: {kind} {value.name!r} is a {value.type}; skipfold serves tensors of "
                f"{', '.join(NUMPY_TYPES)}"
            )
        dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in value.shape)
        found[value.name] = TensorSpec(value.name, datatype, dims)
    return found


def _batches(tensors: list[TensorSpec]) -> bool:
    return all(t.dims and t.dims[0] == -1 for t in tensors)


def _declared(
    entry: TensorConfig, graph: dict[str, TensorSpec], kind: str, batched: int, source: str
) -> TensorSpec:
    found = graph.get(entry.name)
    if found is None:
        raise RepositoryError(
            f"{source}: config.pbtxt declares {kind} {entry.name!r}, which the graph does not "
            f"have (its {kind}s: {', '.join(graph)})"
        )
    datatype = "BYTES" if entry.data_type == "TYPE_STRING" else entry.data_type[5:]
    if datatype != found.datatype:
        raise RepositoryError(
            f"{source}: config.pbtxt declares {kind} {entry.name!r} as {entry.data_type}; the "
            f"graph's is TYPE_{found.datatype}"
        )
    dims = found.dims
    if batched:
        if not dims or dims[0] != -1:
            raise RepositoryError(
                f"{source}: max_batch_size {batched} needs a dynamic first dimension, and the "
                f"graph's {kind} {entry.name!r} is {list(dims)}; write max_batch_size: 0 and its "
                "whole shape in dims"
            )
        dims = dims[1:]
    within = TensorSpec(entry.name, datatype, dims)
    if not within.fits(entry.dims):  # a config may fix what the graph leaves open, not reverse
        batch = " after the batch dimension" if batched else ""
        raise RepositoryError(
            f"{source}: config.pbtxt gives {kind} {entry.name!r} dims {list(entry.dims)}; the "
            f"graph's{batch} are {list(dims)} (-1: any size)"
        )
    return TensorSpec(entry.name, datatype, entry.dims)


def read_signature(session: Any, config: ModelConfig | None, source: str) -> Signature:
    """The model's signature from its ONNX Runtime session and config.pbtxt (None: none
    written); RepositoryError naming what does not fit."""
    graph_inputs = _graph_tensors(session.get_inputs(), "input", source)
    graph_outputs = _graph_tensors(session.get_outputs(), "output", source)
    if config is None:
        every = [*graph_inputs.values(), *graph_outputs.values()]
        batch = DEFAULT_MAX_BATCH_SIZE if _batches(every) else 0
    else:
        batch = config.max_batch_size
        if batch < 0:
            raise RepositoryError(f"{source}: max_batch_size {batch} is negative")
    declared_inputs = config.inputs if config else ()
    declared_outputs = config.outputs if config else ()
    inputs = [_declared(e, graph_inputs, "input", batch, source) for e in declared_inputs] or [
        _completed(t, "input", batch, source) for t in graph_inputs.values()
    ]
    outputs = [_declared(e, graph_outputs, "output", batch, source) for e in declared_outputs] or [
        _completed(t, "output", batch, source) for t in graph_outputs.values()
    ]
    missing = [name for name in graph_inputs if name not in {t.name for t in inputs}]
    if missing:
        raise RepositoryError(
            f"{source}: config.pbtxt does not declare the graph's input {missing[0]!r}"
        )
    for kind, tensors in (("input", inputs), ("output", outputs)):
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise RepositoryError(f"{source}: config.pbtxt declares an {kind} twice: {names}")
    dynamic = config.dynamic_batching if config else batch > 1  # Triton's auto-complete: on
    return Signature(tuple(inputs), tuple(outputs), batch, dynamic and batch > 0)


def _completed(tensor: TensorSpec, kind: str, batch: int, source: str) -> TensorSpec:
    if not batch:
        return tensor
    entry = TensorConfig(tensor.name, f"TYPE_{tensor.datatype}", tensor.dims[1:])
    return _declared(entry, {tensor.name: tensor}, kind, batch, source)
