"""Folding removes every BN and alpha and computes the same function, for any statistics."""

import pytest
import torch

from skipfold.export.fold import bn_affine, fold_model, split_preactivation
from skipfold.models import build_model
from tests.export.conftest import randomize


def max_diff(model, folded, x):
    with torch.no_grad():
        return (model(x) - folded(x)).abs().max().item()


def extra_ops(folded):
    signs = sum(1 for m in folded.modules() if getattr(m, "sign", None) is not None)
    shifts = sum(1 for m in folded.modules() if getattr(m, "shift", None) is not None)
    return signs, shifts


@pytest.mark.parametrize("variant", ["bn", "skipinit", "skipinit-reg", "none"])
@pytest.mark.parametrize("width", [1, 2])
def test_folded_network_computes_the_same_logits(variant, width):
    model = randomize(build_model(variant, 16, width), seed=width)
    folded = fold_model(model)
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        scale = model(x).abs().max().item()
    assert max_diff(model, folded, x) <= 1e-5 * max(1.0, scale)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any("alpha" in name for name, _ in folded.named_parameters())


def test_typical_statistics_fold_completely_into_convolutions():
    model = randomize(build_model("bn", 16, 2), odd_gammas=False)
    folded = fold_model(model)
    assert extra_ops(folded) == (0, 0)
    assert max_diff(model, folded, torch.randn(8, 3, 32, 32)) < 1e-5


def test_folded_bn_and_folded_skipinit_are_the_same_network_shape():
    bn = fold_model(randomize(build_model("bn", 16, 2), odd_gammas=False))
    skipinit = fold_model(randomize(build_model("skipinit", 16, 2)))
    assert {k: v.shape for k, v in bn.state_dict().items()} == {
        k: v.shape for k, v in skipinit.state_dict().items()
    }


def test_negative_zero_and_tiny_gammas_stay_exact_with_a_few_elementwise_ops():
    model = randomize(build_model("bn", 16, 2))  # every BN has one of each
    folded = fold_model(model)
    # 7 pre-activation BNs (6 blocks' norm1 + the final norm): each keeps a sign (the negative
    # and zero channels) and a shift (the zero and tiny ones); norm2 always folds into conv1.
    assert extra_ops(folded) == (7, 7)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        scale = model(x).abs().max().item()
    assert max_diff(model, folded, x) <= 1e-5 * max(1.0, scale)


def test_split_preactivation_per_channel_cases():
    norm = torch.nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        norm.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 1.0]))
        norm.weight.copy_(torch.tensor([2.0, -1.0, 0.0, 1e-9]))
        norm.bias.copy_(torch.tensor([0.3, 0.2, -0.7, 0.4]))
    fold = split_preactivation(norm, 4)
    assert fold.sign.tolist() == [1.0, -1.0, 0.0, 1.0]
    # channel 0 and 1 ride the stream; 2 is the constant relu(t); 3's offset (~4e8) would not fit
    assert fold.offset[2] == 0 and fold.offset[3] == 0 and fold.offset[0] != 0
    assert fold.shift.tolist()[:2] == [0.0, 0.0] and fold.shift[2] == pytest.approx(-0.7)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    expected = torch.relu(norm.double()(x))
    view = (1, -1, 1, 1)
    got = fold.input_scale.view(view) * torch.relu(
        fold.sign.view(view) * (x + fold.offset.view(view)) + fold.shift.view(view)
    )
    torch.testing.assert_close(got, expected)


def test_folding_leaves_the_model_untouched():
    model = randomize(build_model("bn", 10, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_model(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_only_batchnorm_and_identity_fold():
    with pytest.raises(ValueError, match="GroupNorm"):
        bn_affine(torch.nn.GroupNorm(2, 4), 4)


def test_the_papers_control_variant_is_trained_not_exported():
    model = build_model("none-scaled", 10, 1).eval()
    with pytest.raises(ValueError, match="none-scaled is a training ablation"):
        fold_model(model)
