"""Memory given back to the system after a burst of large requests.

glibc keeps freed memory in its heaps (and raises its mmap threshold to the largest block freed),
so after a burst of decoded images RSS stays at the burst's peak. A low fixed mmap threshold
would return each buffer when freed, but then every large body or image is a fresh mapping whose
pages fault in on first touch: joining a 9 MB body took 5.7 ms on the event loop instead of
0.25 ms. So the heap's buffers are reused while a burst lasts, and once the memory freed but
still resident passes a limit, `malloc_trim` hands it back (docs/results.md, "Reliability").
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from pathlib import Path

log = logging.getLogger("skipfold.service")

_M_ARENA_MAX = -8  # glibc's mallopt parameter


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


class Heap:
    """glibc's heap: how much of this process's resident memory it holds unused, and a trim
    that gives that back."""

    def __init__(self) -> None:
        libc = ctypes.CDLL("libc.so.6")
        self._mallinfo2 = libc.mallinfo2  # glibc 2.33+
        self._mallinfo2.restype = _MallInfo2
        self._malloc_trim = libc.malloc_trim
        # One heap for every thread: malloc_trim gives back the free top of the main heap
        # only, so what a decoding thread freed into an arena of its own would stay resident.
        libc.mallopt(_M_ARENA_MAX, 1)
        self._baseline = 0
        self.trim()

    @classmethod
    def of_this_process(cls) -> Heap | None:
        """None without glibc 2.33+ or /proc: the C library's own policy stands. Call it before
        the server starts its threads."""
        try:
            return cls()
        except (OSError, AttributeError):
            return None

    def _not_in_use(self) -> int:
        """Resident bytes that neither the heap's blocks in use nor its mappings in use hold:
        the rest of the process (constant between bursts) plus what the heap holds freed."""
        info = self._mallinfo2()
        return resident_bytes() - info.uordblks - info.hblkhd

    def trim(self) -> None:
        self._malloc_trim(0)
        self._baseline = self._not_in_use()

    def trim_if_holding(self, limit: int) -> int:
        """Trim when the heap holds more than `limit` freed bytes resident; those bytes."""
        held = self._not_in_use() - self._baseline
        if held > limit:
            self.trim()
        return held


async def trim_after_bursts(heap: Heap, interval_s: float = 1.0, limit: int = 32 << 20) -> None:
    """Every `interval_s`, give freed heap memory back to the system once more than `limit`
    bytes of it are resident. The check and the trim run in a worker thread (they take the
    allocator's lock, and a trim may take milliseconds). Runs until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        held = await asyncio.to_thread(heap.trim_if_holding, limit)
        if held > limit:
            log.debug("gave %.0f MB of freed heap memory back to the system", held / 2**20)
