"""The load-time check of another engine against ONNX Runtime: it passes the same answers and
refuses answers that moved, naming what it measured."""

import numpy as np
import pytest

from skipfold.service.engine_check import EngineCheckError, check_engine, check_images
from skipfold.service.runtime import Runner, create_session


def _probabilities(outputs):  # the exports' second output
    return outputs[1]


@pytest.fixture(scope="module")
def reference(repo) -> Runner:
    path = repo / "skipinit" / "1" / "model.onnx"
    return Runner(create_session(path, ["CPUExecutionProvider"], 1, "all", "cpu"))


def test_the_check_images_are_the_same_every_time_half_noise_half_smooth():
    images = check_images((32, 24), count=10)
    assert images.shape == (10, 32, 24, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, check_images((32, 24), count=10))
    steps = np.abs(np.diff(images.astype(int), axis=2)).mean(axis=(1, 2, 3))
    assert steps[5:].max() < steps[:5].min() / 4  # neighbours alike in the smooth half


def test_the_same_answers_pass_with_no_difference(reference):
    check = check_engine(reference, reference, _probabilities, (32, 32), (0.0, 1.0), "m")
    assert check.images == 64 and check.top1_agreement == 1.0
    assert check.max_abs_probability_diff == 0.0 and check.median_abs_probability_diff == 0.0


def test_answers_that_moved_are_refused_with_the_measured_figures(reference):
    def shuffled(images: np.ndarray) -> list[np.ndarray]:  # a wrong layout's kind of answer
        return [out[:, ::-1] for out in reference(images)]

    with pytest.raises(EngineCheckError) as raised:
        check_engine(shuffled, reference, _probabilities, (32, 32), (0.05, 0.9), "m v1")
    message = str(raised.value)
    assert message.startswith("m v1: on 64 check images its top-1 answers agree")
    assert "(at least 90% needed)" in message and "not served" in message
    assert "\n" not in message


def test_a_small_difference_passes_within_the_tolerance_and_not_past_it(reference):
    def nudged(images: np.ndarray) -> list[np.ndarray]:
        logits, probabilities = reference(images)
        return [logits, np.clip(probabilities + 0.01, 0, 1)]

    check = check_engine(nudged, reference, _probabilities, (32, 32), (0.02, 0.9), "m")
    assert check.median_abs_probability_diff == pytest.approx(0.01, abs=1e-6)
    with pytest.raises(EngineCheckError, match=r"differ by 0\.01 at the median"):
        check_engine(nudged, reference, _probabilities, (32, 32), (0.005, 0.9), "m")
