"""Tables for scripts/gpu-check.sh's summary.md, read from the run folders' metrics.jsonl."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TARGET = 0.94


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def speed(runs: Path) -> str:
    """Images/s of the epochs after the first (which pays for cuDNN's autotuning and
    torch.compile), per run."""
    lines = ["", "| run | epoch 1 images/s | later epochs images/s (median) |", "|---|---|---|"]
    for run in sorted(runs.glob("speed-*")):
        rows = _metrics(run)
        later = [r["images_per_s"] for r in rows[1:]] or [float("nan")]
        first, rest = rows[0]["images_per_s"], statistics.median(later)
        lines.append(f"| {run.name} | {first:,.0f} | {rest:,.0f} |")
    return "\n".join(lines) + "\n"


def accuracy(run: Path) -> str:
    """The first epoch at or past TARGET test accuracy, with the training and evaluation time
    up to it (the run's own epoch times: data loading and compilation before epoch 1 not in)."""
    rows = _metrics(run)
    lines = ["", "| epoch | test acc | train s (cumulative) |", "|---|---|---|"]
    total, reached = 0.0, None
    for r in rows:
        total += r["seconds"]
        lines.append(f"| {r['epoch']} | {100 * r['test_acc']:.2f}% | {total:.1f} |")
        if reached is None and r["test_acc"] >= TARGET:
            reached = (r["epoch"], total)
    best = max(r["test_acc"] for r in rows)
    if reached:
        lines.append(f"\n{TARGET:.0%} first at epoch {reached[0]}, {reached[1]:.1f} s of epochs")
    else:
        lines.append(f"\n{TARGET:.0%} not reached: best {100 * best:.2f}%")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    what, path = sys.argv[1], Path(sys.argv[2])
    print(speed(path) if what == "speed" else accuracy(path))
