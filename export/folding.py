"""skipfold's one folding engine, on ONNX graphs: every BatchNormalization, and every per-channel
Mul and Add by a constant (SkipInit's alpha; Caffe2's and tf2onnx's BN forms), folded where the
result is exact, each BN's fate reported. `skipfold export` runs it on its own networks' graphs,
`skipfold import` on anyone's.

The order matters: Mul/Add merge first into the Conv or BN before them (so a BN's affine is
whole), then BNs after Convs fold (export/graph_fold.py), then BNs before ReLUs
(export/preact_fold.py), then the Mul/Add a fold left after a Conv merge into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from skipfold.export.explicit_affine import affines_before_saturating
from skipfold.export.graph_fold import BatchNormReport, fold_batchnorms, fold_mul_add
from skipfold.export.preact_fold import fold_preactivation


@dataclass(frozen=True)
class FoldedGraph:
    model: onnx.ModelProto  # a copy: the graph given is not changed
    report: list[BatchNormReport]  # every BN of the graph: folded into what, or kept and why
    mul_add_folded: int  # per-channel Mul/Add by constants merged into a Conv or BN


def fold_graph(model: onnx.ModelProto, *, allow_residue: bool = False) -> FoldedGraph:
    """`model` with everything folded that folds exactly. `allow_residue`: a pre-activation BN
    whose gammas are negative, zero or tiny in some channel folds too, leaving a Mul by the
    signs and an Add for those channels before its ReLU (export: no BN may remain in skipfold's
    own networks; import keeps such a BN, as the residue measured slower than it)."""
    merged, before = fold_mul_add(model)
    folded, report = fold_batchnorms(merged)
    folded, report = fold_preactivation(folded, report, allow_residue=allow_residue)
    folded, after = fold_mul_add(folded)
    return FoldedGraph(folded, report, before + after)


def fold_exported(unfolded: onnx.ModelProto) -> onnx.ModelProto:
    """skipfold's own network's graph with every BN and alpha folded, residue allowed, and a BN
    before a sigmoid as an explicit affine (export/explicit_affine.py); VerificationError naming
    any BN left (none in the model family: one left says the family changed)."""
    from skipfold.export.verify import VerificationError

    folding = fold_graph(unfolded, allow_residue=True)
    model, report = affines_before_saturating(folding.model, folding.report)
    kept = [f"{entry.name} ({entry.reason})" for entry in report if not entry.folded_into]
    if kept:
        raise VerificationError(f"{len(kept)} BatchNormalization nodes did not fold: {kept[0]}")
    return model
