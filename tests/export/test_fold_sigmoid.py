"""The model family's sigmoid networks and MLP through `skipfold export`'s fold: a BN after a
Gemm folds into it; a BN before a sigmoid cannot move through it and becomes an explicit
per-channel Mul and Add; the graph still computes the float64 network's logits, for any
statistics (negative, zero and tiny gammas included)."""

import numpy as np
import pytest

from skipfold.export.graph_stats import op_counts
from skipfold.models import build_model
from tests.export.conftest import float64_logits, randomize
from tests.export.test_fold import IMAGES, MEAN, STD, _extra, _graphs
from tests.export.test_graph_fold import _outputs


def _matches_float64(model) -> dict[str, int]:
    """The folded graph's op counts, once its logits are the float64 network's."""
    folded = _graphs(model)[1]
    reference = float64_logits(model, IMAGES, MEAN, STD)
    logits = _outputs(folded, {"images": IMAGES})[0]
    assert np.abs(logits - reference).max() <= 1e-5 * max(1.0, float(np.abs(reference).max()))
    return op_counts(folded)


@pytest.mark.parametrize("odd_gammas", [True, False])
def test_a_sigmoid_wide_resnet_keeps_its_pre_activation_bns_as_exact_affines(odd_gammas):
    """WRN-16-2: 13 BNs. Each block's second BN follows its first conv and folds into it; the
    first block's first BN reads the stem conv alone (its shortcut is a projection from the
    sigmoid) and folds into the stem. The other five blocks' first BNs and the final BN read
    the residual stream, which the skip path reads too, and precede a sigmoid: 6 Mul + Add."""
    model = randomize(build_model("bn", 16, 2, activation="sigmoid"), odd_gammas=odd_gammas)
    unfolded, folded = _graphs(model)
    counts = _matches_float64(model)
    assert "BatchNormalization" not in counts
    assert counts["Sigmoid"] == op_counts(unfolded)["Sigmoid"]
    assert _extra(folded, unfolded) == (6, 6)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("variant", ["bn", "none"])
def test_the_mlp_folds_every_bn_into_the_gemm_before_it(activation, variant):
    model = build_model(
        variant, 3, 20, architecture="mlp", activation=activation, input_size=(32, 32)
    )
    counts = _matches_float64(randomize(model, seed=3))
    assert "BatchNormalization" not in counts
    assert counts["Gemm"] == 4
    assert counts.get(activation.capitalize() if activation == "sigmoid" else "Relu") == 3
    unfolded = op_counts(_graphs(model)[0])
    assert counts.get("Mul") == unfolded.get("Mul") and counts.get("Add") == unfolded.get("Add")
