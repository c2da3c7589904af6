"""Decoding an uploaded or given image file into the uint8 [H, W, 3] array a model takes.

Torch-free: the server uses it, and so does the export's verification on real images.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
DEFAULT_MAX_PIXELS = 40_000_000


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
    return image


def to_array(image: Image.Image, size: Sequence[int]) -> np.ndarray:
    """Decode an opened image: first frame, EXIF orientation, RGB, resized to (height, width)."""
    height, width = int(size[0]), int(size[1])
    try:
        image.seek(0)
        image.load()
        if "exif" in image.info:  # parsing EXIF costs more than decoding a small PNG: only if any
            image = ImageOps.exif_transpose(image)
        image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def decode_image(
    data: bytes, size: Sequence[int], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """PNG, JPEG, WebP, BMP or GIF (first frame) -> RGB uint8 [height, width, 3].

    EXIF orientation is applied, any mode is converted to RGB, and the image is resized to
    `size` = (height, width) with bilinear filtering when it differs. The pixel count is checked
    from the header, before any pixel is decoded, so a decompression bomb costs nothing.
    """
    return to_array(open_image(data, max_pixels=max_pixels), size)
