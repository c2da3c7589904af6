"""skipfold's own networks through the one folding engine (export/folding.py), as `skipfold
export` folds them: every BN and alpha gone from the graph, the same function as the PyTorch
network in float64, for any statistics (negative, zero and tiny gammas in every BN)."""

import numpy as np
import onnx
import pytest
import torch

from skipfold.export.folding import fold_exported, fold_graph
from skipfold.export.graph_stats import op_counts
from skipfold.export.onnx_graph import ImageClassifier, export_onnx
from skipfold.export.verify import VerificationError
from skipfold.models import build_model
from tests.export.conftest import float64_logits, randomize
from tests.export.test_graph_fold import _outputs

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
IMAGES = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)


def _graphs(model: torch.nn.Module) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    unfolded = export_onnx(ImageClassifier(model, MEAN, STD), (32, 32))
    return unfolded, fold_exported(unfolded)


def _extra(folded: onnx.ModelProto, unfolded: onnx.ModelProto) -> tuple[int, int]:
    """Mul and Add nodes the fold left beyond the graph's own (standardization, residuals)."""
    before, after = op_counts(unfolded), op_counts(folded)
    own_mul = before.get("Mul", 0) - sum(  # the alphas: folded away
        1 for n in unfolded.graph.node if n.op_type == "Mul" and "alpha" in "".join(n.input)
    )
    return after.get("Mul", 0) - own_mul, after.get("Add", 0) - before.get("Add", 0)


@pytest.mark.parametrize("variant", ["bn", "skipinit", "skipinit-reg", "none"])
@pytest.mark.parametrize("width", [1, 2])
def test_the_folded_graph_computes_the_float64_networks_logits(variant, width):
    model = randomize(build_model(variant, 16, width), seed=width)
    folded = _graphs(model)[1]
    reference = float64_logits(model, IMAGES, MEAN, STD)
    logits = _outputs(folded, {"images": IMAGES})[0]
    assert np.abs(logits - reference).max() <= 1e-5 * max(1.0, float(np.abs(reference).max()))
    counts = op_counts(folded)
    assert "BatchNormalization" not in counts
    assert not any("alpha" in "".join(n.input) for n in folded.graph.node)


def test_typical_statistics_fold_completely_into_convolutions():
    model = randomize(build_model("bn", 16, 2), odd_gammas=False)
    unfolded, folded = _graphs(model)
    assert _extra(folded, unfolded) == (0, 0)
    skipinit = _graphs(randomize(build_model("skipinit", 16, 2)))[1]
    assert op_counts(folded) == op_counts(skipinit)  # folded BN and SkipInit: the same network


def test_negative_zero_and_tiny_gammas_stay_exact_with_a_few_elementwise_ops():
    """7 pre-activation BNs (6 blocks' first + the final one), each with a negative gamma in
    channel 0, a zero one in channel 1 and a tiny one in channel 2. The first block's, whose
    stream only it reads (its shortcut is a projection from its ReLU), folds whole into the
    stem's Conv. Of the other 6, each keeps an Add (the tiny channel: its offset would swamp the
    stream), but no Mul by the signs: the negative gammas agree along each stream, so the Convs
    that make it negate channel 0 and the next BNs take the sign back; a Mul by 0 remains only
    where the zero channel's relu(beta) > 0 reaches a padded Conv (here 4; the final BN's
    reaches the Gemm's bias as a constant). Each block's second BN folds into the Conv before
    it."""
    model = randomize(build_model("bn", 16, 2))
    unfolded, folded = _graphs(model)
    assert _extra(folded, unfolded) == (4, 6)


def test_the_graph_given_is_left_as_it_was():
    unfolded, _ = _graphs(randomize(build_model("bn", 10, 1)))
    before = unfolded.SerializeToString()
    fold_graph(unfolded, allow_residue=True)
    assert unfolded.SerializeToString() == before


def test_a_bn_that_does_not_fold_is_an_error_for_skipfolds_own_networks():
    """A BN before a padded Conv with no Conv before it to carry its offset: no exact fold; an
    export must say so rather than write a BN."""
    stem = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 10, 3, padding=1))
    network = randomize(
        torch.nn.Sequential(stem, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    )
    unfolded = export_onnx(ImageClassifier(network, MEAN, STD), (32, 32))
    with pytest.raises(VerificationError, match="1 BatchNormalization nodes did not fold"):
        fold_exported(unfolded)
