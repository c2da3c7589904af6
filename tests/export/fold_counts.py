"""The docs' fold table (docs/import.md): BatchNormalization and standalone Mul/Add nodes left
in the onnx wheel's light models and in the networks of tests/export/torch_nets.py (random
weights and statistics with negative, zero and 1e-8 gammas, as the tests give them) by ONNX
Runtime's optimizer at level all, by onnx-simplifier (where installed) and by
`skipfold import`; the pre-activation networks also with typical gammas (0.5 to 1.5). Run
from the repository root: python -m tests.export.fold_counts"""

import collections
import importlib.util
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from skipfold.cli import main
from tests.export import torch_nets
from tests.export.test_graph_fold import _materialized

NAMES = ("light_densenet121", "light_resnet50", "light_inception_v2", "light_shufflenet")


def _counts(model: onnx.ModelProto) -> str:
    """BatchNormalization / standalone Mul and Add / all nodes (what the runtime launches;
    ONNX Runtime's level all turns a BN it cannot fuse into a depthwise NCHWc Conv)."""
    ops = collections.Counter(n.op_type for n in model.graph.node)
    return f"{ops['BatchNormalization']} / {ops['Mul'] + ops['Add']} / {len(model.graph.node)}"


def _optimized(source: Path, target: Path) -> onnx.ModelProto:
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
    rows = [(n, n, False) for n in (*NAMES, *torch_nets.NETWORKS)]
    # pre-activation BNs fold whole only where every gamma is positive, as trained ones mostly are
    rows += [(f"{n}_typical", n, True) for n in ("preact_resnet18", "densenet_bc")]
    for name, network, typical in rows:
        source = folder / f"{name}.onnx"
        if name in NAMES:
            onnx.save(_materialized(name), str(source))
        else:
            net = torch_nets.with_random_statistics(torch_nets.NETWORKS[network](), typical=typical)
            torch_nets.export(net, source)
        model = onnx.load(str(source))
        ort_counts = _counts(_optimized(source, folder / f"{name}.ort.onnx"))
        simplified = "not installed"
        if simplifier:
            import onnxsim

            simplified = _counts(onnxsim.simplify(model)[0])
        preset = "imagenet" if name in NAMES else "cifar"
        if main(["import", str(source), "--repo", str(folder / "repo"), "--preprocess", preset]):
            raise SystemExit(f"skipfold import failed on {name}")
        served = folder / "repo" / name / "1" / "model.onnx"
        both = _counts(_optimized(served, folder / f"{name}.both.onnx"))
        row = [name, _counts(model), ort_counts, simplified, _counts(onnx.load(str(served))), both]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        report = table(Path(folder))
    print(report, file=sys.stderr)
