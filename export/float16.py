"""A verified float32 graph in float16, for GPUs: onnxconverter-common's conversion, its
interface kept (uint8 images in, float32 outputs), with what the converter gets wrong put right
first. Shared by `skipfold export --precision fp16` and `skipfold import --precision fp16`.

The converter clips every weight to 1e4 by default (skipfold passes float16's own limits, and
refuses a weight past them in one line instead of changing it); it types the outputs of the
graph's own casts to float32 as float16 while leaving their `to` (an invalid graph), and it
mistypes the readers of a graph output that a node reads too (the logits, read by the softmax),
it casts the output of a node kept in float32 back to float16 at the graph's output, and it
sends float32 values between nodes kept in float32 through float16 and back (rounding them)
where a value has several readers, and float32 constants of such nodes likewise.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection

import numpy as np
import onnx
from onnx import numpy_helper

from skipfold.export.verify import VerificationError

FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT16 = onnx.TensorProto.FLOAT16


def to_float16(
    graph: onnx.ModelProto, keep_float32: Collection[int] = (), instead: str = "use"
) -> onnx.ModelProto:
    """A float16 copy of `graph`; the nodes at the indices `keep_float32` compute in float32
    (casts between). VerificationError where a weight lies past float16's range, ending
    "{instead} fp32 or int8"."""
    from onnxconverter_common import float16

    past = sum(
        int((np.abs(values) > FLOAT16_MAX).sum())
        for values in (numpy_helper.to_array(t) for t in graph.graph.initializer)
        if values.dtype == np.float32
    )
    if past:
        raise VerificationError(
            f"the fp16 graph would have {past} weights past float16's range "
            f"({FLOAT16_MAX:,.0f}); {instead} fp32 or int8"
        )
    model = onnx.ModelProto.FromString(graph.SerializeToString())
    for index, node in enumerate(model.graph.node):  # the converter names casts by node names
        node.name = node.name or f"skipfold_node_{index}"
    kept = [model.graph.node[i].name for i in keep_float32]
    with warnings.catch_warnings():  # one per weight below float16's smallest subnormal,
        warnings.simplefilter("ignore")  # which it takes as that subnormal (6e-8 at most off)
        half = float16.convert_float_to_float16(
            _outputs_apart(model),
            min_positive_val=float(np.finfo(np.float16).smallest_subnormal),
            max_finite_val=FLOAT16_MAX,
            keep_io_types=True,
            node_block_list=kept,
        )
    _casts_to_float16(half)
    _outputs_as_given(half, graph)
    _without_round_trips(half, graph)
    return half


def _casts_to_float16(model: onnx.ModelProto) -> None:
    """The converter types the outputs of the graph's own casts to float32 (the standardization's
    from uint8, say) as float16 and leaves their `to` as it was: an invalid graph. Such a cast
    now casts to float16, as its readers expect."""
    half = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == FLOAT16}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in half:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                    attribute.i = FLOAT16


def _outputs_apart(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model`, changed so that no graph output is read by a node (the logits, read by the
    softmax): the converter casts such an output back to float32 in place, and its readers then
    get float32 where it typed float16. Each becomes an Identity of an inner tensor."""
    graph = model.graph
    read = {name for node in graph.node for name in node.input}
    for output in graph.output:
        if output.name not in read:
            continue
        inner = f"{output.name}_inner"
        for node in graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
            node.input[:] = [inner if i == output.name else i for i in node.input]
        name = f"{output.name}_identity"
        graph.node.append(onnx.helper.make_node("Identity", [inner], [output.name], name=name))
    return model


def _outputs_as_given(half: onnx.ModelProto, graph: onnx.ModelProto) -> None:
    """Each output in its original type: the converter casts the output of a node kept in
    float32 (the softmax) back to float16 although it keeps the interface. A cast to float16
    there casts to float32 instead; any other float16 output gets a cast after it."""
    given = {o.name: o.type.tensor_type.elem_type for o in graph.graph.output}
    producers = {name: node for node in half.graph.node for name in node.output}
    for output in half.graph.output:
        wanted = given.get(output.name)
        if wanted is None or output.type.tensor_type.elem_type == wanted:
            continue
        producer = producers[output.name]
        if producer.op_type == "Cast":
            next(a for a in producer.attribute if a.name == "to").i = wanted
        else:
            inner = f"{output.name}_float16"
            producer.output[list(producer.output).index(output.name)] = inner
            half.graph.node.append(onnx.helper.make_node("Cast", [inner], [output.name], to=wanted))
        output.type.tensor_type.elem_type = wanted


def _without_round_trips(half: onnx.ModelProto, graph: onnx.ModelProto) -> None:
    """Float32 values that the converter rounds to float16 and casts straight back for nodes
    kept in float32: those nodes read the float32 value itself (a constant: as it was)."""
    nodes = half.graph.node
    producers = {name: node for node in nodes for name in node.output}
    original = {t.name: t for t in graph.graph.initializer}
    constants = {t.name: t for t in half.graph.initializer}
    outputs = {o.name for o in half.graph.output}
    for back in [n for n in nodes if n.op_type == "Cast" and _to(n) == onnx.TensorProto.FLOAT]:
        source = back.input[0]
        rounding = producers.get(source)
        if rounding is not None and rounding.op_type == "Cast" and _to(rounding) == FLOAT16:
            exact = rounding.input[0]  # float32: what the rounding cast read
        elif source in constants and constants[source].data_type == FLOAT16:
            if original.get(source) is None or original[source].data_type != onnx.TensorProto.FLOAT:
                continue
            exact = f"{source}_float32"
            if exact not in constants:
                copy = onnx.TensorProto()
                copy.CopyFrom(original[source])
                copy.name = exact
                half.graph.initializer.append(copy)
                constants[exact] = copy
        else:
            continue
        if back.output[0] in outputs:
            continue
        for node in nodes:
            node.input[:] = [exact if i == back.output[0] else i for i in node.input]
        nodes.remove(back)
    read = {i for node in nodes for i in node.input} | outputs
    for node in [n for n in nodes if n.op_type == "Cast" and not set(n.output) & read]:
        nodes.remove(node)  # a rounding cast nothing reads any more
    for tensor in [t for t in half.graph.initializer if t.name not in read]:
        half.graph.initializer.remove(tensor)


def _to(cast: onnx.NodeProto) -> int:
    return next(a.i for a in cast.attribute if a.name == "to")
