"""An imported network behind skipfold's interface: uint8 [N, H, W, 3] in, logits and
probabilities out, the standardization inside the graph in standard ONNX operators only.

So Triton's plain ONNX Runtime backend, tritonclient and skipfold's server run the result as
they run skipfold's own exports (no custom-op library, no Python-backend ensemble). The pixels
go through one MatMul with a [3, C] matrix and one Add: channel order, luma for a 1-channel
network, and (x / 255 - mean) / std in one step.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from skipfold.export.onnx_source import ImageInput
from skipfold.formats.model_config import INPUT_NAME, OUTPUT_NAMES

# Pillow's "L" mode: L = R * 299/1000 + G * 587/1000 + B * 114/1000 (ITU-R 601-2 luma).
LUMA = (0.299, 0.587, 0.114)
PREFIX = "skipfold_preprocess/"


def pixel_matrix(
    channels: int, channel_order: str, mean: list[float], std: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(M [3, C], b [C]) in float64 with standardized = rgb_pixels @ M + b."""
    if channels == 1:
        mix = np.array(LUMA, dtype=np.float64).reshape(3, 1)
    else:
        order = [2, 1, 0] if channel_order == "bgr" else [0, 1, 2]
        mix = np.eye(3)[:, order]
    std64, mean64 = np.asarray(std, np.float64), np.asarray(mean, np.float64)
    return mix / (255.0 * std64), -mean64 / std64


def _rename(graph: onnx.GraphProto) -> dict[str, str]:
    """Rename the graph's values that clash with the names the wrapper adds; the renames."""
    names = {n for node in graph.node for n in (*node.input, *node.output)}
    names |= {v.name for v in graph.input}
    clash = {n: f"source/{n}" for n in names if n in (INPUT_NAME, *OUTPUT_NAMES)}
    clash |= {n: f"source/{n}" for n in names if n.startswith(PREFIX)}
    for node in graph.node:
        node.input[:] = [clash.get(n, n) for n in node.input]
        node.output[:] = [clash.get(n, n) for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        value.name = clash.get(value.name, value.name)
    return clash


def wrap(
    model: onnx.ModelProto,
    image: ImageInput,
    size: tuple[int, int],
    logits: str,
    ends_in_softmax: bool,
    standardization: tuple[np.ndarray, np.ndarray] | None,
    output_rank: int = 2,
) -> onnx.ModelProto:
    """A copy of `model` taking uint8 [N, H, W, 3] `images`, with `logits` and `probabilities`.
    `standardization` (M, b) for a float network; None for one that takes uint8 pixels."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    if ends_in_softmax:  # the final Softmax goes: skipfold adds its own over the logits
        softmax = next(n for n in graph.node if graph.output[0].name in n.output)
        graph.node.remove(softmax)
    renamed = _rename(graph)
    image_name, logits = renamed.get(image.name, image.name), renamed.get(logits, logits)

    nodes, constants = [], []
    pixels = INPUT_NAME
    if standardization is not None:
        mix, shift = standardization
        constants += [
            numpy_helper.from_array(mix.astype(np.float32), PREFIX + "mix"),
            numpy_helper.from_array(shift.astype(np.float32), PREFIX + "shift"),
        ]
        nodes += [
            helper.make_node("Cast", [pixels], [PREFIX + "pixels"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", [PREFIX + "pixels", PREFIX + "mix"], [PREFIX + "mixed"]),
            helper.make_node("Add", [PREFIX + "mixed", PREFIX + "shift"], [PREFIX + "nhwc"]),
        ]
        pixels = PREFIX + "nhwc"
    if image.layout == "NCHW":
        nodes.append(helper.make_node("Transpose", [pixels], [PREFIX + "nchw"], perm=[0, 3, 1, 2]))
        pixels = PREFIX + "nchw"
    if standardization is not None and image.elem_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [pixels], [PREFIX + "typed"], to=image.elem_type))
        pixels = PREFIX + "typed"
    nodes.append(helper.make_node("Identity", [pixels], [image_name]))

    outputs = []
    if output_rank == 4:  # [N, classes, 1, 1]
        outputs.append(helper.make_node("Flatten", [logits], [PREFIX + "logits"], axis=1))
        logits = PREFIX + "logits"
    outputs.append(helper.make_node("Cast", [logits], [OUTPUT_NAMES[0]], to=TensorProto.FLOAT))
    outputs.append(helper.make_node("Softmax", [OUTPUT_NAMES[0]], [OUTPUT_NAMES[1]], axis=1))
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *body, *outputs])
    graph.initializer.extend(constants)
    batch = image.batch if image.batch is not None else "batch"
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [batch, *size, 3])
    )
    del graph.output[:]
    graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, "classes"])
        for name in OUTPUT_NAMES
    )
    del graph.value_info[:]  # the source's shapes: the new input may fix dynamic ones
    _prune(graph)
    return model


def _prune(graph: onnx.GraphProto) -> None:
    """Drop the nodes and constants no output needs (the source's other outputs)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed |= set(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [t for t in graph.initializer if t.name not in needed]
    for tensor in unused:
        graph.initializer.remove(tensor)
