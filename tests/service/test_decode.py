"""The decoder's budget: large images wait for memory instead of taking it all at once."""

import asyncio
import threading

import numpy as np
import pytest

from skipfold.service import decode
from skipfold.service.decode import Decoder, default_max_pixels
from tests.helpers import png


def test_the_default_pixel_limit_follows_the_input_and_is_capped():
    assert default_max_pixels(32 * 32) == 2048 * 2048
    assert default_max_pixels(224 * 224) == 40_000_000


@pytest.mark.parametrize(("budget_images", "expected_peak"), [(1, 1), (2, 2)])
def test_images_beyond_the_budget_wait(monkeypatch, budget_images, expected_peak):
    side = 600  # above the inline limit: decoded in worker threads
    lock, running, peak = threading.Lock(), [0], [0]
    real_to_array = decode.to_array

    def counting_to_array(image, size, resize_shorter=None):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            threading.Event().wait(0.05)  # long enough for the others to try to start
            return real_to_array(image, size, resize_shorter)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(decode, "to_array", counting_to_array)
    images = np.random.default_rng(0).integers(0, 256, (6, side, side, 3), dtype=np.uint8)
    decoder = Decoder(max_pixels=side * side, pixels_in_flight=budget_images * side * side)

    async def decode_all():
        return await asyncio.gather(*(decoder.decode(png(i), (side, side)) for i in images))

    decoded = asyncio.run(decode_all())
    np.testing.assert_array_equal(np.stack(decoded), images)
    assert peak[0] == expected_peak
    assert decoder._decoding == 0
