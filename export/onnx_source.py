"""An ONNX file from elsewhere, read and checked before any work: what `skipfold import` takes.

One image input (float or uint8, NCHW or NHWC, 1 or 3 channels, fixed or dynamic batch, height
and width), one output of [batch, classes] logits or probabilities, weights in the file, in
external data beside it or listed as graph inputs in the old style. Older opsets are converted
with onnx's version converter. Anything else is refused with one line (`SourceError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

# The element types an image input may have, and the numpy types to feed them.
IMAGE_TYPES = {
    TensorProto.FLOAT: np.float32,
    TensorProto.FLOAT16: np.float16,
    TensorProto.DOUBLE: np.float64,
    TensorProto.UINT8: np.uint8,
}


class SourceError(ValueError):
    """The file is not an image classifier `skipfold import` can take."""


@dataclass(frozen=True)
class ImageInput:
    """The graph's image input as found."""

    name: str
    elem_type: int  # an onnx TensorProto type, one of IMAGE_TYPES
    layout: str  # "NCHW" or "NHWC"
    channels: int  # 1 or 3
    batch: int | None  # None: dynamic
    height: int | None  # None: dynamic
    width: int | None

    @property
    def type_name(self) -> str:
        return helper.tensor_dtype_to_np_dtype(self.elem_type).name


def load_source(path: Path, opset: int) -> tuple[onnx.ModelProto, int]:
    """The file as a ModelProto with its external data loaded and its opset at least `opset`,
    and the file's own opset."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, or a file that is not a model at all
        raise SourceError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node:
        raise SourceError(f"{path}: not an ONNX model (no graph nodes)")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # OSError, or onnx's checker's ValidationError
        raise SourceError(f"{path}: its external data cannot be read: {exc}") from None
    own = source_opset(model)
    if own < opset:
        try:
            model = onnx.version_converter.convert_version(model, opset)
        except Exception as exc:  # the converter raises its own C++ errors
            raise SourceError(
                f"{path}: onnx's version converter cannot take opset {own} to {opset}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        model.ir_version = max(model.ir_version, 8)  # opset 18 needs IR 8
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)  # weights listed as inputs (old style): constants now
    fold_constant_nodes(model)
    return model, own


# Ops computed ahead when every input is a constant: the reshaping and arithmetic exporters
# leave around weights (Caffe2's Unsqueeze of a BN's scale, say), so that a fold sees constants.
CONSTANT_OPS = {
    "Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose",
    "Concat", "Gather", "Mul", "Add", "Sub", "Div", "Neg", "Sqrt", "Reciprocal",
}  # fmt: skip


def fold_constant_nodes(model: onnx.ModelProto) -> None:
    """Replace each node of CONSTANT_OPS whose inputs are all constants by its value (computed
    by onnx's reference evaluator; a node it cannot compute stays), in place."""
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    for node in list(graph.node):
        if node.op_type not in CONSTANT_OPS or node.domain not in ("", "ai.onnx"):
            continue
        if not all(name in constants for name in node.input if name):
            continue
        if any(name in outputs for name in node.output):
            continue
        used = [constants[name] for name in node.input if name]
        single = helper.make_graph(
            [node], "constant", [], [helper.make_empty_tensor_value_info(node.output[0])], used
        )
        try:
            values = ReferenceEvaluator(
                helper.make_model(single, opset_imports=list(model.opset_import))
            ).run(None, {})
            tensor = onnx.numpy_helper.from_array(np.asarray(values[0]), node.output[0])
        except Exception:  # the reference evaluator's own errors: ONNX Runtime computes it
            continue
        graph.initializer.append(tensor)
        constants[tensor.name] = graph.initializer[-1]
        graph.node.remove(node)
    read = {name for node in graph.node for name in node.input} | outputs
    for tensor in [t for t in graph.initializer if t.name not in read]:
        graph.initializer.remove(tensor)


def source_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def image_input(model: onnx.ModelProto, path: Path) -> ImageInput:
    """The one image input; SourceError naming what was found otherwise."""
    inputs = list(model.graph.input)
    found = ", ".join(f"{i.name} {_describe(i)}" for i in inputs) or "none"
    if len(inputs) != 1:
        raise SourceError(f"{path}: needs one image input, found {len(inputs)}: {found}")
    value = inputs[0]
    dims = _dims(value)
    elem_type = value.type.tensor_type.elem_type
    if elem_type not in IMAGE_TYPES or len(dims) != 4:
        raise SourceError(
            f"{path}: its input is not an image batch (float or uint8, rank 4): {found}"
        )
    if dims[1] in (1, 3):
        layout, channels, height, width = "NCHW", dims[1], dims[2], dims[3]
    elif dims[3] in (1, 3):
        layout, channels, height, width = "NHWC", dims[3], dims[1], dims[2]
    else:
        raise SourceError(
            f"{path}: its input has no channel dimension of 1 or 3 (NCHW or NHWC): {found}"
        )
    return ImageInput(value.name, elem_type, layout, channels, dims[0], height, width)


def _describe(value: onnx.ValueInfoProto) -> str:
    elem = value.type.tensor_type.elem_type
    name = helper.tensor_dtype_to_np_dtype(elem).name if elem else "?"
    return f"{name}{[d if d is not None else '?' for d in _dims(value)]}"


def logits_output(model: onnx.ModelProto, path: Path, rank: int) -> tuple[str, bool]:
    """(the value holding the logits, whether the graph ended in a Softmax over them), for an
    output of `rank` ([N, classes], or [N, classes, 1, 1])."""
    if not model.graph.output:
        raise SourceError(f"{path}: the graph has no output")
    output = model.graph.output[0].name
    producer = next((n for n in model.graph.node if output in n.output), None)
    if producer is None:
        raise SourceError(f"{path}: its output {output} is not computed by any node")
    if producer.op_type == "Softmax":
        axis = next((a.i for a in producer.attribute if a.name == "axis"), -1)
        if axis == 1 or (axis == -1 and rank == 2):  # over the classes
            return producer.input[0], True
    return output, False


def check_runs(
    model: onnx.ModelProto, image: ImageInput, size: tuple[int, int], path: Path
) -> tuple[int, int]:
    """ONNX Runtime loads and runs the graph once on a black image: (the number of classes,
    the output's rank). SourceError with its message when it cannot (an operator it lacks, a
    broken graph) or when the output is not [N, classes] or [N, classes, 1, 1]."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        shape = [image.batch or 1, image.channels, *size]
        if image.layout == "NHWC":
            shape = [shape[0], *size, image.channels]
        feed = np.zeros(shape, dtype=IMAGE_TYPES[image.elem_type])
        out = session.run([model.graph.output[0].name], {image.name: feed})[0]
    except Exception as exc:  # onnxruntime's own exception types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"{path}: ONNX Runtime cannot run it: {message}") from None
    if out.ndim not in (2, 4) or out.shape[0] != shape[0] or out.shape[2:] not in ((), (1, 1)):
        raise SourceError(
            f"{path}: its output {model.graph.output[0].name} is {list(out.shape)}, not "
            "[batch, classes] (or [batch, classes, 1, 1])"
        )
    return int(out.shape[1]), out.ndim
