"""The heap trimmer, in this process: freed memory is detected and given back."""

import ctypes.util
from pathlib import Path

import pytest

from skipfold.service.memory import Heap, resident_bytes

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists() or ctypes.util.find_library("c") is None,
    reason="reads RSS from /proc, trims glibc's heap",
)


def test_memory_freed_after_a_burst_is_given_back_and_nothing_is_trimmed_at_rest():
    heap = Heap.of_this_process()
    assert heap is not None
    # Blocks of 4 MB, each followed by a smaller one that stays: the first is mapped on its own;
    # once it is freed glibc raises its mmap threshold and the rest come from the heap, where
    # the smaller ones pin them in the middle, out of reach of glibc's own trimming of the top.
    kept = []
    for _ in range(2):
        burst = []
        for _ in range(40):
            burst.append(b"x" * (4 << 20))
            kept.append(b"y" * (200 << 10))
        del burst
    before = resident_bytes()
    held = heap.trim_if_holding(32 << 20)
    after = resident_bytes()
    assert held > 32 << 20, held
    assert before - after > 32 << 20, (before, after)
    assert heap.trim_if_holding(32 << 20) < 32 << 20  # nothing more to give back
    assert len(kept) == 80
