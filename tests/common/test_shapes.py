import numpy as np

from skipfold.common.shapes import CLASSES, generate


def test_shapes_are_deterministic_balanced_uint8_images():
    images, labels = generate(200, seed=3)
    again, _ = generate(200, seed=3)
    other, _ = generate(200, seed=4)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10
    assert len(CLASSES) == 10 and len(set(CLASSES)) == 10


def test_every_image_shows_a_shape_on_a_contrasting_background():
    images, _ = generate(100, seed=0)
    spread = images.reshape(100, -1, 3).astype(float).std(axis=1).max(axis=1)
    assert (spread > 20).all()  # foreground and background differ, not just noise


def test_the_shape_is_the_brighter_part():
    images, _ = generate(200, seed=1)
    luma = images.astype(float) @ np.array([0.299, 0.587, 0.114])
    corners = luma[:, [0, 0, -1, -1], [0, -1, 0, -1]].mean(axis=1)  # background, not shape
    brightest = np.sort(luma.reshape(200, -1), axis=1)[:, -20:].mean(axis=1)
    assert (brightest - corners > 30).all()
