"""Running a grid: every point is a `skipfold train` process with its own run folder.

Rerunning skips the finished runs (trained or diverged) and resumes an interrupted one from its
last epoch; a run that saved no epoch starts again. `jobs` runs that many side by side, each
on its own GPU where there are GPUs, else on an equal share of the CPU cores.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from skipfold.reproduce.experiments import GridPoint
from skipfold.training.run_folder import STATE, RunFolder

DIVERGED_EXIT = 3  # `skipfold train`'s exit status for a run whose loss became NaN


def status(folder: RunFolder, epochs: int) -> str:
    """'trained', 'diverged', 'partial' (resumable), or 'new'."""
    rows = folder.read_metrics()
    if any(row.get("diverged") for row in rows):
        return "diverged"
    if folder.is_complete(epochs):
        return "trained"
    if (folder / STATE).is_file():
        return "partial"
    return "new"


def holds_point(folder: RunFolder, point: GridPoint) -> bool:
    """Whether the folder is free for the point or holds the point's own run (any device)."""
    try:
        recipe = folder.read_config().recipe
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return recipe.model_copy(update={"device": point.config.device}) == point.config


@dataclass
class Outcome:
    point: GridPoint
    status: str  # trained, diverged, failed
    log: Path


def default_jobs(gpus: int) -> int:
    """One run per GPU; without GPUs one run per core, each on one thread (narrow networks train
    a quarter faster that way than one after the other on all threads: docs/results.md)."""
    return gpus or os.cpu_count() or 1


def _environment(slot: int, jobs: int, gpus: int) -> dict[str, str]:
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    elif jobs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def run_point(point: GridPoint, out: Path, env: dict[str, str]) -> Outcome:
    """Train one point (or resume it) in its own process; its output goes to a log file."""
    folder = RunFolder(out / point.name)
    log = out / "logs" / (point.name.replace("/", "__") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    if not holds_point(folder, point):
        log.write_text(
            f"{folder.path} holds a run with other settings (an earlier preset?): move it away "
            "or choose another --out\n"
        )
        return Outcome(point, "failed", log)
    state = status(folder, point.config.epochs)
    if state in ("trained", "diverged"):
        return Outcome(point, state, log)
    if state == "new" and folder.path.exists():  # killed before its first epoch was saved
        for path in folder.path.iterdir():
            path.unlink()
    argv = [sys.executable, "-m", "skipfold", *point.command(out)[1:]]
    if state == "partial":
        argv.append("--resume")
    with log.open("a") as stream:
        result = subprocess.run(argv, stdout=stream, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode in (130, -signal.SIGINT):  # Ctrl-C: the run kept its last epoch
        raise KeyboardInterrupt
    if result.returncode == DIVERGED_EXIT:
        return Outcome(point, "diverged", log)
    return Outcome(point, "trained" if result.returncode == 0 else "failed", log)


def run_grid(
    points: list[GridPoint],
    out: Path,
    jobs: int = 1,
    gpus: int = 0,
    runner: Callable[[GridPoint, Path, dict[str, str]], Outcome] = run_point,
) -> list[Outcome]:
    """Run every point, `jobs` at a time, with a progress bar over the grid."""
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)

    def work(point: GridPoint) -> Outcome:
        slot = slots.get()
        try:
            return runner(point, out, _environment(slot, jobs, gpus))
        finally:
            slots.put(slot)

    finished = {
        p.name
        for p in points
        if status(RunFolder(out / p.name), p.config.epochs) in ("trained", "diverged")
    }
    outcomes = []
    pool = ThreadPoolExecutor(max_workers=jobs)
    bar = tqdm(total=len(points), initial=len(finished), unit="run", desc="grid", file=sys.stderr)
    try:
        futures = [pool.submit(work, point) for point in points]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if outcome.point.name not in finished:
                bar.set_postfix_str(f"{outcome.point.name}: {outcome.status}", refresh=False)
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return outcomes
