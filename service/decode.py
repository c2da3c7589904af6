"""Decoding uploads without stalling the event loop or growing without bound.

Every image is checked from its header first (pixel count, and the scans of a JPEG) before any
pixel is decoded; for files over 256 KB in a worker thread, as the scans are counted over the
whole file. Small baseline images are then decoded on the event loop (tens of microseconds: a
thread hand-off would cost more); everything else in a worker thread, and only while the
decoded pixels in flight fit a budget, so a burst of large images waits for memory instead of
taking it all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from skipfold.common.images import DEFAULT_MAX_PIXELS, is_progressive, open_image, to_array

INLINE_DECODE_PIXELS = 256 * 256
INLINE_HEADER_BYTES = 256 * 1024
# An image may hold this many times the pixels of the largest model input (64 x 64 times the
# side: 2048 x 2048 for 32 x 32 models), and never more than the general limit.
PIXEL_HEADROOM = 64 * 64
IMAGES_IN_FLIGHT_AT_THE_LIMIT = 4


def default_max_pixels(largest_input_pixels: int) -> int:
    return min(DEFAULT_MAX_PIXELS, PIXEL_HEADROOM * largest_input_pixels)


class Decoder:
    def __init__(self, max_pixels: int, pixels_in_flight: int | None = None) -> None:
        self.max_pixels = max_pixels
        self.pixels_in_flight = pixels_in_flight or IMAGES_IN_FLIGHT_AT_THE_LIMIT * max_pixels
        self._decoding = 0  # pixels being decoded in worker threads now
        self._waiting: list[asyncio.Future[None]] = []

    async def decode(
        self, data: bytes, size: Sequence[int], resize_shorter: int | None = None
    ) -> np.ndarray:
        """Image bytes -> uint8 [height, width, 3] (`to_array`'s resizing); ImageError for
        anything else."""
        if len(data) <= INLINE_HEADER_BYTES:
            image = open_image(data, max_pixels=self.max_pixels)
        else:  # the checks read the whole file (a JPEG's scans: about 1 ms per MB)
            image = await asyncio.to_thread(open_image, data, max_pixels=self.max_pixels)
        pixels = image.width * image.height
        if pixels <= INLINE_DECODE_PIXELS and not is_progressive(image):
            return to_array(image, size, resize_shorter)
        # one image alone always proceeds, whatever the budget
        while self._decoding and self._decoding + pixels > self.pixels_in_flight:
            freed = asyncio.get_running_loop().create_future()
            self._waiting.append(freed)
            await freed
        self._decoding += pixels
        work = asyncio.ensure_future(asyncio.to_thread(to_array, image, size, resize_shorter))
        # released when the thread is done, even if the request was cancelled meanwhile
        work.add_done_callback(lambda done: self._release(pixels, done))
        return await asyncio.shield(work)

    def _release(self, pixels: int, done: asyncio.Future[np.ndarray]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: a request that went away leaves no warning behind
        self._decoding -= pixels
        waiting, self._waiting = self._waiting, []
        for freed in waiting:
            if not freed.done():
                freed.set_result(None)
