"""The Wide-ResNet family: layout, parameter counts, variants, initialization, validation."""

import math
import re

import pytest
import torch
from torch import nn

from skipfold.models import VARIANTS, ModelSpec, build_from_spec, build_model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("depth", "width", "expected"),
    [(16, 4, 2_748_890), (28, 10, 36_479_194)],  # Zagoruyko & Komodakis 2016, 10 classes
)
def test_bn_parameter_count_matches_wide_resnet_paper(depth, width, expected):
    assert abs(n_params(build_model("bn", depth, width)) - expected) <= 0.01 * expected


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_classifies_a_batch(variant):
    model = build_model(variant, 10, 2, num_classes=7).eval()
    logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()


def test_stage_layout_and_shortcuts():
    model = build_model("bn", 16, 4)
    blocks = model.blocks()
    assert [stage for stage, _ in blocks] == [1, 1, 2, 2, 3, 3]
    assert [b.conv2.out_channels for _, b in blocks] == [64, 64, 128, 128, 256, 256]
    assert [b.conv1.stride for _, b in blocks] == [(1, 1), (1, 1), (2, 2), (1, 1), (2, 2), (1, 1)]
    # 1x1 projection exactly where the shape changes (16 -> 64 in stage 1 since k > 1)
    shortcuts = [b.shortcut for _, b in blocks]
    assert [s is not None for s in shortcuts] == [True, False, True, False, True, False]
    assert all(s.kernel_size == (1, 1) for s in shortcuts if s is not None)
    assert model.stem.out_channels == 16 and model.fc.in_features == 256
    features = model.forward_features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 256, 8, 8)


def test_width_one_first_block_is_identity_shortcut():
    _, first = build_model("bn", 10, 1).blocks()[0]
    assert first.shortcut is None


def test_projection_shortcut_reads_the_preactivated_input():
    torch.manual_seed(0)
    _, block = build_model("bn", 10, 2).blocks()[0]
    block.eval()
    with torch.no_grad():
        block.norm1.running_mean.uniform_(-1, 1)
        x = torch.randn(2, 16, 8, 8)
        skip, _ = block.paths(x)
        expected = block.shortcut(torch.relu(block.norm1(x)))
    torch.testing.assert_close(skip, expected, rtol=0, atol=0)


def test_bn_variant_layers():
    model = build_model("bn", 16, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 * 6 + 1  # two per block and the final one
    assert all(b.momentum == 0.1 and b.eps == 1e-5 for b in bns)
    assert all(b.alpha is None for _, b in model.blocks())


@pytest.mark.parametrize("variant", ["skipinit", "skipinit-reg", "none"])
def test_unnormalized_variants_have_no_normalization_layer(variant):
    model = build_model(variant, 16, 2)
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    assert not any(isinstance(m, norms) for m in model.modules())


def test_skipinit_alpha_starts_at_zero_and_is_learnable():
    model = build_model("skipinit", 16, 2)
    alphas = [b.alpha for _, b in model.blocks()]
    assert all(isinstance(a, nn.Parameter) and a.requires_grad and a.item() == 0 for a in alphas)
    assert all(c.bias is None for c in model.modules() if isinstance(c, nn.Conv2d))
    assert isinstance(model.head_dropout, nn.Identity)
    # identity at init: every identity-shortcut block returns its input exactly
    x = torch.randn(2, 32, 32, 32)
    _, block = model.blocks()[1]
    assert torch.equal(block(x), x)


def test_alpha_init_option_for_ablations():
    d = 6 * 3
    model = build_model("skipinit", 22, 1, alpha_init=1 / math.sqrt(d))
    assert all(b.alpha.item() == pytest.approx(1 / math.sqrt(d)) for _, b in model.blocks())
    x = torch.randn(2, 16, 32, 32)
    _, block = model.blocks()[1]
    skip, branch = block.paths(x)
    assert torch.equal(skip, x) and branch.abs().sum() > 0


def test_regularized_skipinit_has_biases_and_head_dropout():
    model = build_model("skipinit-reg", 16, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.bias is not None for c in convs)
    assert isinstance(model.head_dropout, nn.Dropout) and model.head_dropout.p == 0.6
    assert all(b.alpha is not None and b.alpha.item() == 0 for _, b in model.blocks())
    assert build_model("skipinit-reg", 16, 2, head_dropout=0.3).head_dropout.p == 0.3


def test_none_variant_is_a_plain_residual_sum():
    model = build_model("none", 16, 2)
    assert all(b.alpha is None for _, b in model.blocks())
    x = torch.randn(2, 32, 32, 32)
    _, block = model.blocks()[1]
    _, branch = block.paths(x)
    torch.testing.assert_close(block(x), x + branch)


def test_block_dropout_option_sits_after_second_activation():
    model = build_model("bn", 16, 2, dropout=0.3)
    _, block = model.blocks()[0]
    assert isinstance(block.dropout, nn.Dropout) and block.dropout.p == 0.3


def test_he_initialization_fan_in():
    torch.manual_seed(0)
    model = build_model("bn", 28, 10)
    for name, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.weight.numel() > 20_000:
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05), name
            assert abs(conv.weight.mean().item()) < 0.05 * math.sqrt(2 / fan_in)


def test_spec_rebuilds_the_same_model_through_json():
    model = build_model("skipinit-reg", 16, 2, num_classes=5, alpha_init=0.5)
    spec = ModelSpec.model_validate_json(model.spec.model_dump_json())
    again = build_from_spec(spec)
    assert again.spec == model.spec == spec
    assert (spec.head_dropout, spec.alpha_init) == (0.6, 0.5)  # the variant's defaults filled in
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    assert again(torch.randn(2, 3, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("bn", 15, 1), {}, "6N+4"),
        (("bn", 4, 1), {}, "6N+4"),
        (("bn", 16.0, 1), {}, "depth: input should be a valid integer"),
        (("batchnorm", 16, 1), {}, "bn, skipinit, skipinit-reg, none"),
        (("bn", 16, 0), {}, "width: input should be greater than or equal to 1"),
        (("bn", 16, 1), {"num_classes": 1}, "num_classes: input should be greater than or equal"),
        (("bn", 16, 1), {"alpha_init": 1.0}, "alpha_init applies to skipinit"),
        (("skipinit", 16, 1), {"alpha": 1.0}, "valid: dropout, alpha_init, head_dropout"),
        (("bn", 16, 1), {"dropout": 1.0}, "dropout: input should be less than 1"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_valid_choices(args, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(*args, **kwargs)


def test_wrn_1000_1_builds_and_runs_forward_on_cpu():
    torch.manual_seed(0)
    model = build_model("skipinit", 1000, 1).eval()
    assert len(model.blocks()) == 3 * 166
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
