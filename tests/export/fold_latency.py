"""The docs' latency table for `skipfold import` (docs/import.md): the onnx wheel's light models
and each network of tests/export/torch_nets.py behind skipfold's interface, unfolded against
folded, batch 1, one thread, ONNX Runtime at level all (fp32, and int8 as `skipfold import
--precision int8` quantizes) and OpenVINO (fp32) where installed, in interleaved rounds
(bench/rounds.py). Both graphs carry
the same standardization and softmax, so the ratio is the fold's alone. Run from the
repository root: python -m tests.export.fold_latency"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from skipfold.bench.rounds import interleaved
from skipfold.export import importer
from skipfold.export.import_options import ImportOptions
from skipfold.export.onnx_source import logits_output
from skipfold.export.preprocessing_graph import pixel_matrix, wrap
from skipfold.export.quantize import quantize_int8
from tests.export import torch_nets
from tests.export.fold_counts import NAMES, PREACTIVATION
from tests.export.test_graph_fold import _materialized

OPENVINO = importlib.util.find_spec("openvino") is not None


def _graphs(source: Path, preset: str, fold_all: bool) -> tuple[bytes, bytes, int]:
    """(unfolded, folded, BNs left) behind the same interface, as skipfold import makes them."""
    options = ImportOptions(preprocess=preset, fold_all=fold_all)
    plan = importer._plan(source, options, None)
    logits, softmax = logits_output(plan.source, source, plan.output_rank)
    matrix = pixel_matrix(3, "rgb", *options.standardization(3))
    if plan.image.elem_type == onnx.TensorProto.UINT8:
        matrix = None
    unfolded = wrap(plan.source, plan.image, plan.size, logits, softmax, matrix, plan.output_rank)
    folded = importer._build(plan, options)
    left = sum(entry.folded_into is None for entry in folded.card.fold_report)
    return unfolded.SerializeToString(), folded.model_bytes, left


def _sources(folder: Path) -> list[tuple[str, str, Path, bool]]:
    """(network, gammas, file, --fold-all): the onnx wheel's light models (random statistics),
    then every network of torch_nets with both kinds of gammas, the pre-activation ones also
    with two negative gammas in each BN, and with --fold-all on the adversarial gammas."""
    rows = []
    for name in NAMES:
        path = folder / f"{name}.onnx"
        onnx.save(_materialized(name), str(path))
        rows.append((name, "random", path, False))
    kinds = {"random": "of every sign, 0, 1e-8", "typical": "0.5 to 1.5", "signed": "two negative"}
    for name, make in torch_nets.NETWORKS.items():
        for kind, label in kinds.items():
            if kind == "signed" and name not in PREACTIVATION:
                continue
            typical, signed = kind == "typical", kind == "signed"
            net = torch_nets.with_random_statistics(make(), typical=typical, signed=signed)
            path = torch_nets.export(net, folder / f"{name}-{kind}.onnx")
            rows.append((name, label, path, False))
            if kind == "random" and name in PREACTIVATION:
                rows.append((name, f"{label}, --fold-all", path, True))
    return rows


def _int8(graph: bytes, size: int) -> bytes:
    """`graph` quantized as `skipfold import --precision int8` does (its default calibration),
    on 8 random images fed one at a time (the light models' batch is fixed at 1)."""
    images = np.random.default_rng(1).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    return quantize_int8(onnx.load_from_string(graph), images, batch=1).SerializeToString()


def _engines(folder: Path, name: str, graphs: dict[str, bytes], image: np.ndarray) -> dict:
    """ONNX Runtime (level all, one thread; fp32 and int8) and, where installed, OpenVINO (fp32,
    one thread): step functions by (engine, kind)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    steps = {}
    for kind, graph in graphs.items():
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        steps[f"onnxruntime/{kind}"] = lambda s=session: s.run(None, {"images": image})
        quantized = _int8(graph, image.shape[1])
        session = ort.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])
        steps[f"onnxruntime int8/{kind}"] = lambda s=session: s.run(None, {"images": image})
        if OPENVINO:
            from skipfold.service.openvino_runtime import OpenVINORunner

            path = folder / f"{name}-{kind}.served.onnx"
            path.write_bytes(graph)
            runner = OpenVINORunner(path, 1, "fp32")
            steps[f"openvino/{kind}"] = lambda r=runner: r(image)
    return steps


def table(folder: Path) -> str:
    engines = ["onnxruntime", "onnxruntime int8", *(["openvino"] if OPENVINO else [])]
    header = " | ".join(
        f"{e} unfolded p50 ms | {e} folded p50 ms | {e} folded / unfolded" for e in engines
    )
    lines = [
        f"| network | gammas | BNs left | {header} |",
        "| --- | --- | --- |" + " --- | --- | --- |" * len(engines),
    ]
    for name, gammas, source, fold_all in _sources(folder):
        preset = "imagenet" if name in NAMES else "cifar"
        unfolded, folded, left = _graphs(source, preset, fold_all)
        size = 224 if name in NAMES else 32
        image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        graphs = {"unfolded": unfolded, "folded": folded}
        steps = _engines(folder, f"{source.stem}-{fold_all}", graphs, image)
        timings = interleaved(steps, rounds=21, block_seconds=0.03)
        cells = []
        for engine in engines:
            p50 = {k: timings[f"{engine}/{k}"].summary()["p50_ms"] for k in graphs}
            ratio = p50["folded"] / p50["unfolded"]
            cells.append(f"{p50['unfolded']:.3f} | {p50['folded']:.3f} | {ratio:.3f}")
        lines.append(f"| {name} | {gammas} | {left} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        report = table(Path(folder))
    print(report, file=sys.stderr)
