"""The measurement method, written once: interleaved rounds and their medians.

Every comparison in skipfold (in-process variants, HTTP against in-process, wrk, the experiment
scripts) runs its contenders in blocks, one block of each per round, in a fresh random order
every round (A B C, C A B, ...: no contender always follows the same neighbour), until the
duration or the number of rounds is spent. Machine drift and noise then hit every contender
alike, and the spread of the per-round medians says whether a difference is real.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Timings:
    """One contender's single-call latencies (seconds) and the median of each round's block."""

    latencies: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """p50, p90, p99 of single calls and the p25-p75 of the round medians, in ms."""
        calls = np.array(self.latencies)
        rounds = np.array(self.round_medians or self.latencies)
        return {
            "p50_ms": 1000 * float(np.median(calls)),
            "p90_ms": 1000 * float(np.percentile(calls, 90)),
            "p99_ms": 1000 * float(np.percentile(calls, 99)),
            "round_p25_ms": 1000 * float(np.percentile(rounds, 25)),
            "round_p75_ms": 1000 * float(np.percentile(rounds, 75)),
        }


def interleaved(
    steps: Mapping[str, Callable[[], Any]],
    *,
    duration: float | None = None,
    rounds: int | None = None,
    min_rounds: int = 3,
    block_seconds: float | Mapping[str, float] = 0.0,
    warmup_calls: int = 3,
    seed: int = 0,
    on_round: Callable[[], None] | None = None,
) -> dict[str, Timings]:
    """Run `steps` in interleaved rounds until `duration` seconds or `rounds` rounds are spent
    (at least `min_rounds`); see the module docstring. A block is one call, or as many calls as
    fill `block_seconds` (per step, if a mapping), judged from a timed call after
    `warmup_calls` untimed ones."""
    if duration is None and rounds is None:
        raise ValueError("give a duration or a number of rounds")
    names = list(steps)
    calls: dict[str, int] = {}
    for name in names:
        for _ in range(warmup_calls):
            steps[name]()
        target = (
            block_seconds.get(name, 0.0) if isinstance(block_seconds, Mapping) else block_seconds
        )
        if target <= 0:
            calls[name] = 1
            continue
        started = time.perf_counter()
        steps[name]()
        calls[name] = max(1, int(target / max(time.perf_counter() - started, 1e-6)))
    timings = {name: Timings() for name in names}
    order = random.Random(seed)
    deadline = time.perf_counter() + duration if duration is not None else None
    done = 0
    while done < min_rounds or not _spent(deadline, rounds, done):
        for name in order.sample(names, len(names)):
            block = []
            for _ in range(calls[name]):
                started = time.perf_counter()
                steps[name]()
                block.append(time.perf_counter() - started)
            timings[name].latencies += block
            timings[name].round_medians.append(statistics.median(block))
        done += 1
        if on_round is not None:
            on_round()
    return timings


def _spent(deadline: float | None, rounds: int | None, done: int) -> bool:
    if deadline is not None and time.perf_counter() >= deadline:
        return True
    return rounds is not None and done >= rounds
