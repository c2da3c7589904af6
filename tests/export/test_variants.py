"""Every variant, exported and run in ONNX Runtime: no BN left, PyTorch's logits and top-1."""

import numpy as np
import onnxruntime as ort
import pytest

from skipfold.export.exporter import PrecisionOptions, build
from skipfold.export.verify import random_images
from skipfold.training.checkpoint import load_trained
from skipfold.training.run_folder import RunFolder
from tests.export.conftest import float32_error, float64_logits, make_run


@pytest.mark.parametrize(
    ("variant", "fold"),
    [("bn", True), ("bn", False), ("skipinit", True), ("skipinit-reg", True)],
)
def test_wrn_16_2_with_randomized_statistics_matches_pytorch(tmp_path, variant, fold):
    run = make_run(tmp_path / variant, variant, depth=16, width=2, seed=3)  # gammas of both signs
    exported = build(run, fold=fold)
    ops = exported.card.op_counts
    assert ("BatchNormalization" in ops) == (variant == "bn" and not fold)
    if variant == "bn" and not fold:
        assert ops["BatchNormalization"] == 13
    session = ort.InferenceSession(exported.model_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert [(o.name, o.type) for o in session.get_outputs()] == [
        ("logits", "tensor(float)"),
        ("probabilities", "tensor(float)"),
    ]
    model, config = load_trained(RunFolder(run))
    for batch in (1, 7):
        images = random_images(batch, (32, 32), seed=batch)
        logits, probabilities = session.run(None, {"images": images})
        per_image = config.data.standardize == "per-image"
        expected = float64_logits(model, images, config.data.mean, config.data.std, per_image)
        assert logits.shape == probabilities.shape == (batch, 10)
        assert float32_error(logits, expected) < 1e-5
        assert (logits.argmax(1) == expected.argmax(1)).all()
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["variant"] == variant and meta["folded"] == str(fold).lower()


def test_test_time_flips_average_the_plain_graphs_logits_on_the_image_and_its_mirror(tmp_path):
    run = make_run(tmp_path / "bn", "bn", depth=10, width=2, seed=3, test_limit=200)
    plain, flipped = build(run), build(run, test_flip=True)
    assert (plain.card.test_flip, flipped.card.test_flip) == (False, True)
    assert flipped.card.flops_per_image == 2 * plain.card.flops_per_image
    images = random_images(6, (32, 32), seed=1)
    run_plain = ort.InferenceSession(plain.model_bytes, providers=["CPUExecutionProvider"])
    run_flipped = ort.InferenceSession(flipped.model_bytes, providers=["CPUExecutionProvider"])
    logits = run_flipped.run(None, {"images": images})[0]
    mirrored = np.ascontiguousarray(images[:, :, ::-1])  # NHWC: the width axis
    expected = (run_plain.run(None, {"images": images})[0]
                + run_plain.run(None, {"images": mirrored})[0]) / 2  # fmt: skip
    assert np.abs(logits - expected).max() <= 1e-4
    assert np.abs(logits - run_plain.run(None, {"images": images})[0]).max() > 1e-3


@pytest.mark.parametrize(("fold", "precision"), [(False, "fp32"), (True, "int8"), (True, "fp16")])
def test_test_time_flips_through_every_export_path(tmp_path, fold, precision):
    # fp16: without the tiny gammas, whose folded weights float16 cannot hold
    run = make_run(
        tmp_path / "bn", "bn", depth=10, width=2, test_limit=200, odd_gammas=precision != "fp16"
    )
    loose = PrecisionOptions(max_accuracy_drop=100.0)  # random weights: only the paths count
    exported = build(run, fold=fold, precision=precision, options=loose, test_flip=True)
    card = exported.card
    assert card.test_flip and card.precision == precision and card.folded == fold
    assert ("BatchNormalization" in card.op_counts) == (not fold)
    assert "Concat" in card.op_counts  # the image and its mirror, one batch
    # int8, fp16: held to the float32 graph with the same flips; fp32 has no such check
    assert (card.accuracy_check is None) == (precision == "fp32")
    if precision != "fp32":
        assert card.accuracy_check.reference_accuracy == card.test_accuracy
    session = ort.InferenceSession(exported.model_bytes, providers=["CPUExecutionProvider"])
    images = random_images(3, (32, 32), seed=2)
    logits = session.run(None, {"images": images})[0]
    mirrored = session.run(None, {"images": np.ascontiguousarray(images[:, :, ::-1])})[0]
    assert np.abs(logits - mirrored).max() <= (1e-5 if precision == "fp32" else 0.05)
