"""The docs' latency table for `skipfold import` (docs/import.md): each network of
tests/export/torch_nets.py behind skipfold's interface, unfolded against folded, batch 1, one
thread, ONNX Runtime at level all, in interleaved rounds (bench/rounds.py). Both graphs carry
the same standardization and softmax, so the ratio is the fold's alone. Run from the
repository root: python -m tests.export.fold_latency"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from skipfold.bench.rounds import interleaved
from skipfold.export import importer
from skipfold.export.import_options import ImportOptions
from skipfold.export.onnx_source import logits_output
from skipfold.export.preprocessing_graph import pixel_matrix, wrap
from tests.export import torch_nets


def _graphs(source: Path) -> tuple[bytes, bytes, int]:
    """(unfolded, folded, BNs left) behind the same interface, as skipfold import makes them."""
    options = ImportOptions(preprocess="cifar")
    plan = importer._plan(source, options, None)
    logits, softmax = logits_output(plan.source, source, plan.output_rank)
    matrix = pixel_matrix(3, "rgb", *options.standardization(3))
    unfolded = wrap(plan.source, plan.image, plan.size, logits, softmax, matrix, plan.output_rank)
    folded = importer._build(plan, options)
    left = sum(entry.folded_into is None for entry in folded.card.fold_report)
    return unfolded.SerializeToString(), folded.model_bytes, left


def table(folder: Path) -> str:
    lines = [
        "| network | gammas | BNs left | unfolded p50 ms | folded p50 ms | folded / unfolded |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for name, make in torch_nets.NETWORKS.items():
        for typical in (False, True):
            net = torch_nets.with_random_statistics(make(), typical=typical)
            unfolded, folded, left = _graphs(torch_nets.export(net, folder / f"{name}.onnx"))
            sessions = {
                kind: ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
                for kind, graph in (("unfolded", unfolded), ("folded", folded))
            }
            steps = {k: (lambda s=s: s.run(None, {"images": image})) for k, s in sessions.items()}
            timings = interleaved(steps, rounds=21, block_seconds=0.03)
            p50 = {k: t.summary()["p50_ms"] for k, t in timings.items()}
            kind = "0.5 to 1.5" if typical else "of every sign, 0, 1e-8"
            lines.append(
                f"| {name} | {kind} | {left} | {p50['unfolded']:.3f} | {p50['folded']:.3f} | "
                f"{p50['folded'] / p50['unfolded']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        report = table(Path(folder))
    print(report, file=sys.stderr)
