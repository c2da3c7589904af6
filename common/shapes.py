"""`shapes`: a procedural 32x32 RGB data set of ten geometric shapes, made in memory in seconds.

Each image holds one shape of a random size and position, in a random colour on a darker random
background colour (at least a set contrast apart), with Gaussian pixel noise. The shape is
always the brighter part, as in MNIST: with random polarity the class hides in geometry alone,
nothing a shallow feature can start from, and every network without normalization sat at chance
for hundreds of steps before it learned anything (docs/results.md, "Defaults that train").
Everything comes from one seeded NumPy generator, so a seed gives the same images on every
machine. It needs no download, so the demo, the tests and the container can train anywhere.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from skipfold.common.io import atomic_path, cache_dir

CLASSES = (
    "circle",
    "ring",
    "square",
    "frame",
    "diamond",
    "triangle",
    "plus",
    "cross",
    "star",
    "crescent",
)
SIZE = 32
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 brightness of an RGB colour
MIN_LUMA_CONTRAST = 48.0


def _mask(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape; x, y are offsets from its centre in units of its radius
    (1.0 is the shape's edge), y pointing up."""
    r = np.hypot(x, y)
    box = np.maximum(np.abs(x), np.abs(y))
    bar = 0.3
    if name == "circle":
        return r <= 1.0
    if name == "ring":
        return (r <= 1.0) & (r >= 0.6)
    if name == "square":
        return box <= 0.85
    if name == "frame":
        return (box <= 0.9) & (box >= 0.55)
    if name == "diamond":
        return np.abs(x) + np.abs(y) <= 1.1
    if name == "triangle":  # apex up, flat base
        return (y >= -0.75) & (y <= 0.95 - 1.7 * np.abs(x))
    if name == "plus":
        return ((np.abs(x) <= bar) & (np.abs(y) <= 1.0)) | ((np.abs(y) <= bar) & (np.abs(x) <= 1.0))
    if name == "cross":
        return ((np.abs(x - y) <= 1.41 * bar) | (np.abs(x + y) <= 1.41 * bar)) & (box <= 0.8)
    if name == "star":  # five points, one up
        angle = np.arctan2(y, x) - np.pi / 2
        return r <= 0.42 + 0.58 * ((1 + np.cos(5 * angle)) / 2) ** 2
    if name == "crescent":
        return (r <= 1.0) & (np.hypot(x - 0.45, y - 0.1) > 0.75)
    raise ValueError(f"unknown shape {name!r}")


def generate(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images as uint8 [N, 32, 32, 3] and their labels as int64 [N], balanced."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.int64)
    radius = rng.uniform(9.0, 12.0, size=count)
    margin = radius * 0.9
    cx = rng.uniform(margin, SIZE - 1 - margin)
    cy = rng.uniform(margin, SIZE - 1 - margin)
    grid = np.arange(SIZE, dtype=np.float32)
    masks = np.zeros((count, SIZE, SIZE), dtype=bool)
    for index, name in enumerate(CLASSES):
        chosen = np.flatnonzero(labels == index)
        r = radius[chosen, None, None]
        x = (grid[None, None, :] - cx[chosen, None, None]) / r
        y = (cy[chosen, None, None] - grid[None, :, None]) / r  # rows grow downwards
        masks[chosen] = _mask(name, *np.broadcast_arrays(x, y))

    background = rng.uniform(0, 255, size=(count, 3))
    foreground = rng.uniform(0, 255, size=(count, 3))
    # redraw foregrounds too close to their background until every pair has contrast, in
    # colour and in brightness; then the brighter colour is the shape's
    while True:
        close = (np.linalg.norm(foreground - background, axis=1) < 120) | (
            np.abs((foreground - background) @ LUMA) < MIN_LUMA_CONTRAST
        )
        if not close.any():
            break
        foreground[close] = rng.uniform(0, 255, size=(int(close.sum()), 3))
    darker = foreground @ LUMA < background @ LUMA
    foreground[darker], background[darker] = background[darker], foreground[darker].copy()
    images = np.where(masks[..., None], foreground[:, None, None], background[:, None, None])
    noise_sigma = rng.uniform(4.0, 16.0, size=(count, 1, 1, 1)).astype(np.float32)
    images = images + rng.standard_normal(size=images.shape, dtype=np.float32) * noise_sigma
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels


def generate_cached(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`generate`, kept in the cache (`common.io.cache_dir`): 12,000 images take 3 s to make, as
    long as a whole short run. The key holds this module's source, so a changed generator is
    never read from an old file. Without a writable cache they are made every time."""
    key = hashlib.sha256(Path(__file__).read_bytes() + f"{count}/{seed}".encode()).hexdigest()
    cache = cache_dir() / f"shapes-{key[:16]}.npz"
    try:
        with np.load(cache, allow_pickle=False) as arrays:
            return arrays["x"], arrays["y"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent or foreign
        pass
    images, labels = generate(count, seed)
    try:
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, x=images, y=labels)
    except OSError:
        pass
    return images, labels


def class_samples(seed: int = 12345) -> list[tuple[str, np.ndarray]]:
    """One image of each class, [H, W, 3] uint8: the demo's samples/ and the server's page."""
    images, labels = generate(200, seed=seed)
    found = list(labels)
    return [(name, images[found.index(index)]) for index, name in enumerate(CLASSES)]
