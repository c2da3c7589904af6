"""What each run of a grid reached, read from its run folder, and the paper's statistics of them.

The run folders are found by their config.json wherever they are under `--out`: a run made
elsewhere from `--print-commands` counts once its folder is copied in.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skipfold.reproduce.experiments import GridPoint
from skipfold.training.run_folder import CONFIG, RunFolder

CHANCE_MARGIN = 0.05  # within 5 points of chance is "at chance"


@dataclass(frozen=True)
class Reading:
    """One run's result."""

    arm: str
    x: float  # depth, batch size or initialization scale
    lr: float
    seed: int
    status: str  # trained, diverged, missing
    test_acc: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None  # over the last epoch's steps (augmented, dropout on)


@dataclass(frozen=True)
class Summary:
    """One arm at one x: the paper's statistics."""

    arm: str
    x: float
    best_lr: float | None  # the lr with the best mean of the best `keep` seeds
    mean_acc: float | None
    std_acc: float | None  # None for a single seed
    train_loss: float | None  # mean over the same runs
    diverged: int  # runs that diverged, over every lr
    runs: int  # runs found, over every lr
    expected: int  # runs in the grid
    largest_stable_lr: float | None  # the largest lr below which (and at which) none diverged
    at_chance: bool  # every run of every lr diverged or ended within 5 points of chance


def _key(config: Any) -> str:
    return config.model_copy(update={"device": "auto", "data_dir": None}).model_dump_json()


def run_folders(points: list[GridPoint], out: Path) -> dict[str, RunFolder | None]:
    """Each point's run folder (by point name), found by its config anywhere under `out`."""
    folders: dict[str, RunFolder] = {}
    for path in sorted(out.rglob(CONFIG)):
        try:
            folders.setdefault(
                _key(RunFolder(path.parent).read_config().recipe), RunFolder(path.parent)
            )
        except ValueError:
            continue  # not a run folder of ours
    return {point.name: folders.get(_key(point.config)) for point in points}


def read_runs(points: list[GridPoint], out: Path, axis: str) -> list[Reading]:
    """A reading for every point, from the run folder whose config matches it."""
    found = run_folders(points, out)
    readings = []
    for point in points:
        c = point.config
        base = {"arm": point.arm, "x": getattr(c, axis), "lr": c.lr, "seed": c.seed}
        folder = found[point.name]
        rows = folder.read_metrics() if folder else []
        finished = [r for r in rows if "test_acc" in r]
        if any(r.get("diverged") for r in rows):
            readings.append(Reading(**base, status="diverged"))
        elif folder and folder.is_complete(c.epochs) and finished:
            last = finished[-1]
            readings.append(
                Reading(
                    **base,
                    status="trained",
                    test_acc=last["test_acc"],
                    train_loss=last["train_loss"],
                    train_acc=last.get("train_acc"),
                )
            )
        else:
            readings.append(Reading(**base, status="missing"))
    return readings


def summarize(readings: list[Reading], keep: int, classes: int = 10) -> list[Summary]:
    """Per arm and x: the best lr by the mean test accuracy of its best `keep` seeds (a diverged
    run counts as chance there), and the figures at that lr."""
    chance = 1 / classes
    summaries = []
    groups: dict[tuple[str, int], list[Reading]] = {}
    for reading in readings:
        groups.setdefault((reading.arm, reading.x), []).append(reading)
    for (arm, x), group in groups.items():
        found = [r for r in group if r.status != "missing"]
        by_lr: dict[float, list[Reading]] = {}
        for reading in found:
            by_lr.setdefault(reading.lr, []).append(reading)
        best_lr, best = None, None
        for lr, runs in sorted(by_lr.items()):
            if not any(r.status == "trained" for r in runs):
                continue  # every seed diverged: no accuracy to speak of at this lr
            ranked = sorted(runs, key=lambda r: r.test_acc if r.test_acc is not None else chance)
            top = ranked[::-1][:keep]
            score = statistics.fmean(r.test_acc if r.test_acc is not None else chance for r in top)
            if best is None or score > best[0]:
                best_lr, best = lr, (score, top)
        stable = []  # from the smallest lr up, until the first lr at which a run diverged
        for lr, runs in sorted(by_lr.items()):
            if any(r.status == "diverged" for r in runs):
                break
            stable.append(lr)
        accs = [r.test_acc for r in best[1] if r.test_acc is not None] if best else []
        losses = [r.train_loss for r in best[1] if r.train_loss is not None] if best else []
        summaries.append(
            Summary(
                arm=arm,
                x=x,
                best_lr=best_lr,
                mean_acc=statistics.fmean(accs) if accs else None,
                std_acc=statistics.pstdev(accs) if len(accs) > 1 else None,
                train_loss=statistics.fmean(losses) if losses else None,
                diverged=sum(r.status == "diverged" for r in found),
                runs=len(found),
                expected=len(group),
                largest_stable_lr=max(stable) if stable else None,
                at_chance=bool(found)
                and all(
                    r.status == "diverged" or (r.test_acc or 0) < chance + CHANCE_MARGIN
                    for r in found
                ),
            )
        )
    return summaries
