"""Decoding uploads: formats, modes, EXIF orientation, first GIF frame, bombs, garbage."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from skipfold.common.images import MAX_JPEG_SCANS, ImageError, ImageTooLarge, decode_image
from tests.helpers import many_scan_jpeg, png


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (200, 0, 0))
    image.paste((0, 200, 0), (0, 0, 8, 8))  # a green corner, top left as stored
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=100)
    decoded = decode_image(data, (40, 20))  # (height, width) of the displayed image
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(decoded, expected)
    assert decoded[2, -3, 1] > 150 and decoded[2, 2, 1] < 50  # the green corner moved right


def test_gif_first_frame_and_resize():
    frames = [Image.new("P", (64, 48), i) for i in (1, 2)]
    frames[0].putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(data, (32, 32))
    assert decoded.shape == (32, 32, 3) and decoded.dtype == np.uint8
    assert (decoded[..., 0] == 255).all()  # red: frame 1, not the blue frame 2


COLOUR = (10, 120, 240)
GREY = round(0.299 * 10 + 0.587 * 120 + 0.114 * 240)  # its luma (ITU-R 601): 101


@pytest.mark.parametrize(
    ("mode", "expected", "tolerance"),
    [
        ("L", GREY, 0.5),
        ("LA", GREY, 0.5),
        ("I;16", GREY, 0.5),
        ("1", GREY, 8),  # dithered black and white: the mean keeps the luma
        ("RGBA", COLOUR, 0.5),
        ("P", COLOUR, 3),  # dithered from the web palette
        ("CMYK", COLOUR, 3),  # through JPEG
    ],
)
def test_any_mode_becomes_rgb_of_the_colour_it_holds(mode, expected, tolerance):
    image = Image.new("RGB", (32, 32), COLOUR).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = decode_image(encode(image, fmt), (32, 32))
    assert decoded.shape == (32, 32, 3) and decoded.dtype == np.uint8
    target = np.broadcast_to(np.array(expected, dtype=float), (3,))
    assert np.abs(decoded.mean((0, 1)) - target).max() <= tolerance, decoded.mean((0, 1))
    if isinstance(expected, int):  # a grey mode: every pixel grey
        assert (decoded == decoded[..., :1]).all()


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    data = encode(Image.new("1", (5000, 5000)), "PNG")
    with pytest.raises(ImageTooLarge, match="25,000,000 pixels"):
        decode_image(data, (32, 32), max_pixels=1_000_000)


@pytest.mark.parametrize(
    ("data", "unsupported", "message"),
    [
        (b"", False, "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, False, "corrupt PNG"),
        (b"hello world", True, "not a supported image"),
        (encode(Image.new("RGB", (8, 8)), "TIFF"), True, "not a supported image"),
    ],
)
def test_garbage_is_a_clear_image_error(data, unsupported, message):
    with pytest.raises(ImageError, match=message) as error:
        decode_image(data, (32, 32))
    assert error.value.unsupported is unsupported


def test_truncated_jpeg_is_an_error():
    data = encode(Image.new("RGB", (64, 64), (5, 5, 5)), "JPEG")
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 2], (32, 32))


def test_a_progressive_jpeg_of_ordinary_scans_decodes():
    data = many_scan_jpeg(repeats=0)
    assert 5 <= data.count(b"\xff\xda") <= MAX_JPEG_SCANS
    assert decode_image(data, (64, 64)).shape == (64, 64, 3)
    assert decode_image(many_scan_jpeg(repeats=20), (8, 8)).shape == (8, 8, 3)


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding(monkeypatch):
    data = many_scan_jpeg(repeats=5_000)
    assert Image.open(io.BytesIO(data)).load() is not None  # Pillow itself decodes it all
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image))
    with pytest.raises(ImageTooLarge, match="JPEG of more than 100 scans"):
        decode_image(data, (32, 32))
    assert decoded == []  # refused from the header and the markers: no pixel decoded


@pytest.mark.parametrize("landscape", [True, False])
def test_resize_shorter_then_center_crop_keeps_the_middle(landscape):
    """A 100 x 50 image whose middle half (along its long side) is red, the rest blue: the
    shorter side resized to 20 makes it 40 x 20, and the 20 x 20 center crop is that middle
    half, so red but for the blur bilinear filtering leaves at its two edges."""
    pixels = np.zeros((50, 100, 3), np.uint8)
    pixels[..., 2] = 255
    pixels[:, 25:75] = (255, 0, 0)
    if not landscape:
        pixels = pixels.transpose(1, 0, 2).copy()
    out = decode_image(png(pixels), (20, 20), resize_shorter=20)
    assert out.shape == (20, 20, 3)
    inner = out[:, 2:-2] if landscape else out[2:-2]
    assert (inner == (255, 0, 0)).all()
    edges = (out[:, [0, -1]] if landscape else out[[0, -1]]).reshape(-1, 3)
    assert (edges[:, 2] > 0).all()  # blue bleeds in at both edges: the crop is centred
