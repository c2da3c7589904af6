"""What this machine offers a process: the cores it may run on."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """The cores this process may use (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
