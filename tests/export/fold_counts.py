"""The docs' fold table (docs/import.md): BatchNormalization and standalone Mul/Add nodes left
in the onnx wheel's light models (random weights and statistics, as the tests give them) by
ONNX Runtime's optimizer at level all, by onnx-simplifier (where installed) and by
`skipfold import`. Run from the repository root: python -m tests.export.fold_counts"""

import collections
import importlib.util
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from skipfold.cli import main
from tests.export.test_graph_fold import _materialized

NAMES = ("light_densenet121", "light_resnet50", "light_inception_v2", "light_shufflenet")


def _counts(model: onnx.ModelProto) -> str:
    ops = collections.Counter(n.op_type for n in model.graph.node)
    return f"{ops['BatchNormalization']} / {ops['Mul'] + ops['Add']}"


def table(folder: Path) -> str:
    simplifier = importlib.util.find_spec("onnxsim") is not None
    lines = [
        "| network | in the file | ONNX Runtime, level all | onnx-simplifier | skipfold import |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in NAMES:
        source = folder / f"{name}.onnx"
        model = _materialized(name)
        onnx.save(model, str(source))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(folder / f"{name}.ort.onnx")
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        simplified = "not installed"
        if simplifier:
            import onnxsim

            simplified = _counts(onnxsim.simplify(model)[0])
        if main(["import", str(source), "--repo", str(folder / "repo")]) != 0:
            raise SystemExit(f"skipfold import failed on {name}")
        imported = onnx.load(str(folder / "repo" / name / "1" / "model.onnx"))
        ort_counts = _counts(onnx.load(options.optimized_model_filepath))
        row = [name, _counts(model), ort_counts, simplified, _counts(imported)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        report = table(Path(folder))
    print(report, file=sys.stderr)
