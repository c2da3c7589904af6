"""In-process latency, measured so that machine noise cannot decide a comparison.

Every variant is warmed up, then all variants of one batch size run in short blocks in
interleaved rounds (`bench.rounds`, the one method every comparison uses). Reported: median,
p90, p99 of single-call latency and the spread of the per-round medians
(p25-p75), with throughput, FLOPs per image and the implied GFLOP/s (beside the roof of the
model's precision: bench.roof).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from skipfold.bench.rounds import interleaved
from skipfold.bench.variants import Variant
from skipfold.common.machine import cpu_count

BLOCK_SECONDS = 0.03  # one variant's turn in a round


def measure(
    variants: list[Variant],
    batch: int,
    duration: float,
    progress: Any,
    rng: np.random.Generator,
) -> None:
    """Interleaved rounds (`bench.rounds`) until `duration` seconds are spent. Every variant
    gets the same random uint8 images (of its own input size)."""
    sizes = {v.input_size for v in variants}
    images = {s: rng.integers(0, 256, (batch, *s, 3), dtype=np.uint8) for s in sizes}
    steps = {index: (lambda v=v: v.run(images[v.input_size])) for index, v in enumerate(variants)}
    timings = interleaved(
        steps,
        duration=duration,
        block_seconds=BLOCK_SECONDS,
        seed=int(rng.integers(2**31)),
        on_round=lambda: progress.update(1),
    )
    for index, v in enumerate(variants):
        v.latencies, v.round_medians = timings[index].latencies, timings[index].round_medians


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
