"""In-process latency, measured so that machine noise cannot decide a comparison.

Every variant is warmed up, then all variants of one batch size run in short blocks,
interleaved (A B C, C A B, ...: a fresh random order each round, so no variant always follows
the same neighbour), until the duration is spent, so drift and noise hit all of them alike.
Reported: median, p90, p99 of single-call latency and the spread of the per-round medians
(p25-p75), with throughput, FLOPs per image and the implied GFLOP/s (beside the roof of the
model's precision: bench.roof).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from skipfold.bench.variants import Variant

BLOCK_SECONDS = 0.03  # one variant's turn in a round


def measure(
    variants: list[Variant],
    batch: int,
    duration: float,
    progress: Any,
    rng: np.random.Generator,
) -> None:
    """Interleaved rounds until `duration` seconds are spent; see the module docstring. Every
    variant gets the same random uint8 images (of its own input size)."""
    sizes = {v.input_size for v in variants}
    images = {s: rng.integers(0, 256, (batch, *s, 3), dtype=np.uint8) for s in sizes}
    for v in variants:
        v.latencies, v.round_medians = [], []
    calls = []
    for v in variants:  # warm-up, and the number of calls that fills one block
        for _ in range(3):
            v.run(images[v.input_size])
        started = time.perf_counter()
        v.run(images[v.input_size])
        calls.append(max(1, int(BLOCK_SECONDS / max(time.perf_counter() - started, 1e-6))))
    deadline = time.perf_counter() + duration
    round_index = 0
    while time.perf_counter() < deadline or round_index < 3:
        for i in rng.permutation(len(variants)):
            v, block = variants[i], []
            for _ in range(calls[i]):
                started = time.perf_counter()
                v.run(images[v.input_size])
                block.append(time.perf_counter() - started)
            v.latencies += block
            v.round_medians.append(statistics.median(block))
        round_index += 1
        progress.update(1)


def summary(v: Variant, batch: int) -> dict[str, Any]:
    """One row of the table; `roof.apply_roofs` adds its fraction of the roof."""
    lat = np.array(v.latencies)
    p50 = float(np.median(lat))
    rounds = np.array(v.round_medians)
    gflops = v.flops_per_image * batch / p50 / 1e9 if v.flops_per_image else None
    return {
        "model": v.model,
        "precision": v.precision,
        "roof_precision": v.roof or v.precision,
        "engine": v.engine,
        "provider": v.provider,
        "level": v.level,
        "batch": batch,
        "calls": len(lat),
        "rounds": len(rounds),
        "p50_ms": 1000 * p50,
        "p90_ms": 1000 * float(np.percentile(lat, 90)),
        "p99_ms": 1000 * float(np.percentile(lat, 99)),
        "round_p25_ms": 1000 * float(np.percentile(rounds, 25)),
        "round_p75_ms": 1000 * float(np.percentile(rounds, 75)),
        "images_per_s": batch / float(lat.mean()),
        "flops_per_image": v.flops_per_image,
        "gflops": gflops,
    }


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {cpu_count()} cores available, {platform.system()}"
