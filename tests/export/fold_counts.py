"""The docs' fold table (docs/import.md): the nodes doing a BN's work (per_channel_nodes) left
in the onnx wheel's light models and in the networks of tests/export/torch_nets.py (random
weights and statistics with negative, zero and 1e-8 gammas, as the tests give them) by ONNX
Runtime's optimizer at level all, by onnx-simplifier (where installed) and by
`skipfold import`; the pre-activation networks also with typical gammas (0.5 to 1.5), and
with those negated in two channels of each BN (`signed`). ONNX
Runtime's level all rewrites each BN it cannot fuse as a depthwise 1x1 NCHWc Conv: those count
as the BNs they are. Run from the repository root: python -m tests.export.fold_counts"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from skipfold.cli import main
from skipfold.export.preprocessing_graph import PREFIX
from tests.export import torch_nets
from tests.export.test_graph_fold import _materialized

NAMES = ("light_densenet121", "light_resnet50", "light_inception_v2", "light_shufflenet")
PREACTIVATION = ("preact_resnet18", "densenet_bc")


def per_channel_nodes(model: onnx.ModelProto) -> int:
    """How many nodes do a BN's work, or part of it, channel by channel: BatchNormalization, a
    Mul or Add by a constant (the form Caffe2, tf2onnx and Keras write), and a depthwise 1x1
    Conv (weights [C, 1, 1, 1], group C: ONNX Runtime's NCHWc form of a BN or a Mul it cannot
    fuse). skipfold's own interface (its standardization's Add) is left out."""
    constants = {i.name for i in model.graph.initializer}
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        if all(name in constants for name in node.input):  # a Constant, or an Unsqueeze of one
            constants.update(node.output)
            continue
        if any(name.startswith(PREFIX) for name in node.output):
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        depthwise_1x1 = group > 1 and shapes.get(node.input[1]) == [group, 1, 1, 1]
        count += (
            node.op_type == "BatchNormalization"
            or (node.op_type in ("Mul", "Add") and any(name in constants for name in node.input))
            or (node.op_type == "Conv" and depthwise_1x1)
        )
    return count


def _counts(model: onnx.ModelProto) -> str:
    """Per-channel nodes (BNs and their parts, in any form) / all nodes."""
    return f"{per_channel_nodes(model)} / {len(model.graph.node)}"


def optimized(source: Path, target: Path) -> onnx.ModelProto:
    """The graph ONNX Runtime runs after its optimizer at level all, as it writes it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(target))


def table(folder: Path) -> str:
    simplifier = importlib.util.find_spec("onnxsim") is not None
    lines = [
        "| network | in the file | ONNX Runtime, level all | onnx-simplifier | skipfold import "
        "| skipfold import, then ONNX Runtime level all |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = [(n, n, "random") for n in (*NAMES, *torch_nets.NETWORKS)]
    # pre-activation BNs fold whole where gammas are positive, or negative where x can be negated
    rows += [(f"{n}_{g}", n, g) for g in ("typical", "signed") for n in PREACTIVATION]
    for name, network, gammas in rows:
        source = folder / f"{name}.onnx"
        if name in NAMES:
            onnx.save(_materialized(name), str(source))
        else:
            typical, signed = gammas == "typical", gammas == "signed"
            net = torch_nets.NETWORKS[network]()
            net = torch_nets.with_random_statistics(net, typical=typical, signed=signed)
            torch_nets.export(net, source)
        model = onnx.load(str(source))
        ort_counts = _counts(optimized(source, folder / f"{name}.ort.onnx"))
        simplified = "not installed"
        if simplifier:
            import onnxsim

            simplified = _counts(onnxsim.simplify(model)[0])
        preset = "imagenet" if name in NAMES else "cifar"
        if main(["import", str(source), "--repo", str(folder / "repo"), "--preprocess", preset]):
            raise SystemExit(f"skipfold import failed on {name}")
        served = folder / "repo" / name / "1" / "model.onnx"
        both = _counts(optimized(served, folder / f"{name}.both.onnx"))
        row = [name, _counts(model), ort_counts, simplified, _counts(onnx.load(str(served))), both]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        report = table(Path(folder))
    print(report, file=sys.stderr)
