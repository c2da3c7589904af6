"""Decoding an uploaded or given image file into the uint8 [H, W, 3] array a model takes.

Torch-free: the server uses it, and so does the export's verification on real images.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
DEFAULT_MAX_PIXELS = 40_000_000
# A JPEG is decoded once per scan: encoders write 1 (baseline) to about 20 (progressive); a
# crafted file holds hundreds of thousands of tiny ones, seconds of work in a few megabytes.
# Scans are counted from the markers of any JPEG (Pillow opens some as MPO) before decoding.
MAX_JPEG_SCANS = 100
_START_OF_SCAN = b"\xff\xda"  # 0xFF in entropy-coded data is always stuffed (0xFF00): no false hits


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}  # files read as images


class ImageError(ValueError):
    """The data is not an image we can decode (HTTP 400 / 415)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


class ImageTooLarge(ImageError):
    """The header announces more pixels than allowed: refused before decoding (HTTP 413)."""


_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
}


def _claimed_format(data: bytes) -> str | None:
    """The supported format the first bytes announce, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _SIGNATURES.items() if data.startswith(magic)), None)


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read only the header: format and size checked, no pixel decoded yet (cheap)."""
    if not data:
        raise ImageError("empty image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        claimed = _claimed_format(data)
        if claimed:
            raise ImageError(f"corrupt {claimed} image: its header cannot be read") from None
        raise ImageError(
            f"not a supported image (supported: {', '.join(FORMATS)})", unsupported=True
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt image: {exc}") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"image is {image.width}x{image.height} = {pixels:,} pixels; "
            f"the limit is {max_pixels:,}"
        )
    if isinstance(image, JpegImageFile) and _scans_beyond(data, MAX_JPEG_SCANS):
        raise ImageTooLarge(
            f"JPEG of more than {MAX_JPEG_SCANS} scans (encoders write 1 to 20): refused "
            "before decoding"
        )
    return image


def _scans_beyond(data: bytes, limit: int) -> bool:
    """Whether `data` holds more than `limit` start-of-scan markers: stops at the first one
    over, so a file of a million scans costs no more to refuse than one of `limit`."""
    position = 0
    for _ in range(limit + 1):
        position = data.find(_START_OF_SCAN, position) + 2
        if position == 1:  # not found
            return False
    return True


def is_progressive(image: Image.Image) -> bool:
    """A progressive JPEG (or MPO, Pillow's name for a JPEG that says it holds several):
    decoding costs a pass per scan, not one pass."""
    return isinstance(image, JpegImageFile) and bool(image.info.get("progressive"))


def to_array(
    image: Image.Image, size: Sequence[int], resize_shorter: int | None = None
) -> np.ndarray:
    """Decode an opened image: first frame, EXIF orientation, RGB, resized to (height, width);
    with `resize_shorter`, its shorter side resized to that first and the center cropped (the
    evaluation transform of ImageNet models: resize 256, crop 224)."""
    height, width = int(size[0]), int(size[1])
    try:
        image.seek(0)
        image.load()
        if "exif" in image.info:  # parsing EXIF costs more than decoding a small PNG: only if any
            image = ImageOps.exif_transpose(image)
        image = image.convert("RGB")
        if resize_shorter is not None:
            image = _resize_and_crop(image, resize_shorter, (width, height))
        elif image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def _resize_and_crop(image: Image.Image, shorter: int, crop: tuple[int, int]) -> Image.Image:
    """Shorter side to `shorter` (aspect kept, rounded as torchvision rounds), then the
    centered (width, height) `crop`, padded with black where the image is smaller."""
    width, height = image.size
    longer = max(1, int(shorter * max(width, height) / min(width, height)))
    resized = (shorter, longer) if width <= height else (longer, shorter)
    if resized != image.size:
        image = image.resize(resized, Image.Resampling.BILINEAR)
    left = round((image.width - crop[0]) / 2.0)
    top = round((image.height - crop[1]) / 2.0)
    return image.crop((left, top, left + crop[0], top + crop[1]))


def decode_image(
    data: bytes,
    size: Sequence[int],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    resize_shorter: int | None = None,
) -> np.ndarray:
    """PNG, JPEG, WebP, BMP or GIF (first frame) -> RGB uint8 [height, width, 3].

    EXIF orientation is applied, any mode is converted to RGB, and the image is resized to
    `size` = (height, width) with bilinear filtering when it differs. The pixel count is checked
    from the header, before any pixel is decoded, so a decompression bomb costs nothing.
    """
    return to_array(open_image(data, max_pixels=max_pixels), size, resize_shorter)
