"""The report of a grid: each reading beside the paper's claim, as markdown, JSON and a PNG.

It reads the run folders themselves (config.json, metrics.jsonl), wherever under `--out` they
are: a run made elsewhere from `--print-commands` counts once its folder is copied in.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skipfold.common.io import atomic_path, write_bytes_atomic
from skipfold.reproduce.experiments import EXPERIMENT_TABLE, GridPoint
from skipfold.training.run_folder import CONFIG, RunFolder

CHANCE_MARGIN = 0.05  # within 5 points of chance is "at chance"


@dataclass(frozen=True)
class Reading:
    """One run's result."""

    arm: str
    x: int  # depth or batch size
    lr: float
    seed: int
    status: str  # trained, diverged, missing
    test_acc: float | None = None
    train_loss: float | None = None


@dataclass(frozen=True)
class Summary:
    """One arm at one x: the paper's statistics."""

    arm: str
    x: int
    best_lr: float | None  # the lr with the best mean of the best `keep` seeds
    mean_acc: float | None
    std_acc: float | None
    train_loss: float | None  # mean over the same runs
    diverged: int  # runs that diverged, over every lr
    runs: int  # runs found, over every lr
    expected: int  # runs in the grid
    largest_stable_lr: float | None  # the largest lr at which no run diverged
    at_chance: bool  # every run of every lr diverged or ended within 5 points of chance


def _key(config: Any) -> str:
    return config.model_copy(update={"device": "auto", "data_dir": None}).model_dump_json()


def read_runs(points: list[GridPoint], out: Path, axis: str) -> list[Reading]:
    """A reading for every point, from the run folder whose config matches it."""
    folders: dict[str, RunFolder] = {}
    for path in sorted(out.rglob(CONFIG)):
        try:
            folders.setdefault(
                _key(RunFolder(path.parent).read_config().recipe), RunFolder(path.parent)
            )
        except ValueError:
            continue  # not a run folder of ours
    readings = []
    for point in points:
        c = point.config
        base = {"arm": point.arm, "x": getattr(c, axis), "lr": c.lr, "seed": c.seed}
        folder = folders.get(_key(c))
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
            ranked = sorted(runs, key=lambda r: r.test_acc if r.test_acc is not None else chance)
            top = ranked[::-1][:keep]
            score = statistics.fmean(r.test_acc if r.test_acc is not None else chance for r in top)
            if best is None or score > best[0]:
                best_lr, best = lr, (score, top)
        stable = [lr for lr, runs in by_lr.items() if all(r.status == "trained" for r in runs)]
        accs = [r.test_acc for r in best[1] if r.test_acc is not None] if best else []
        losses = [r.train_loss for r in best[1] if r.train_loss is not None] if best else []
        summaries.append(
            Summary(
                arm=arm,
                x=x,
                best_lr=best_lr,
                mean_acc=statistics.fmean(accs) if accs else None,
                std_acc=statistics.pstdev(accs) if len(accs) > 1 else (0.0 if accs else None),
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


@dataclass(frozen=True)
class Verdict:
    claim: str
    reading: str
    agrees: bool | None  # None: the grid is not finished


def _by(summaries: Iterable[Summary]) -> dict[tuple[str, int], Summary]:
    return {(s.arm, s.x): s for s in summaries}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _complete(*summaries: Summary | None) -> bool:
    return all(s is not None and s.runs == s.expected for s in summaries)


def _judge(claim: str, reading: str, holds: bool, *summaries: Summary | None) -> Verdict:
    """A verdict, left open (None) until every run it rests on is finished."""
    return Verdict(claim, reading, holds if _complete(*summaries) else None)


def depth_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    table = _by(summaries)
    deepest = max(s.x for s in summaries)
    verdicts = []
    for arm in ("none", "skipinit alpha=1"):
        s = table.get((arm, deepest))
        reading = f"{s.diverged}/{s.runs} runs diverged, best {_pct(s.mean_acc)}" if s else "-"
        claim = f"{arm} cannot be trained at depth {deepest}: diverges or stays at chance"
        verdicts.append(_judge(claim, reading, bool(s and s.at_chance), s))
    for arm in ("bn", "skipinit"):
        s = table.get((arm, deepest))
        reading = f"{_pct(s.mean_acc)} at lr {_fmt(s.best_lr)}" if s else "-"
        claim = f"{arm} trains at depth {deepest} (at least 90% on the built-in data)"
        verdicts.append(_judge(claim, reading, bool(s and (s.mean_acc or 0) >= 0.9), s))
    rows = [s for s in summaries if s.arm == "skipinit"]
    best = {s.x: s.best_lr for s in rows if s.best_lr is not None}
    steps = [round(math.log2(max(lrs) / lr)) for lr in best.values()]
    verdicts.append(
        _judge(
            "skipinit's optimal lr is almost independent of depth (within one grid step)",
            ", ".join(f"depth {x}: {lr:g}" for x, lr in sorted(best.items())) or "-",
            bool(steps) and max(steps) - min(steps) <= 1,
            *rows,
        )
    )
    return verdicts


def batch_size_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    table = _by(summaries)
    batches = sorted({s.x for s in summaries})
    verdicts = []
    for arm in ("bn", "skipinit", "none"):
        rows = [table.get((arm, b)) for b in batches]
        best = [(s.x, s.best_lr) for s in rows if s and s.best_lr]
        slope = None
        if len(best) >= 2:
            (b0, lr0), (b1, lr1) = best[0], best[-1]
            slope = math.log(lr1 / lr0) / math.log(b1 / b0)
        reading = ", ".join(f"batch {b}: {lr:g}" for b, lr in best)
        reading += f" (log-log slope {slope:.2f})" if slope is not None else ""
        verdicts.append(
            _judge(
                f"{arm}: the optimal lr grows in proportion to the batch size (slope 0.5 to 1.5)",
                reading or "-",
                slope is not None and 0.5 <= slope <= 1.5,
                *rows,
            )
        )
    order = ("bn", "skipinit", "none")
    for b in batches:
        rows = [table.get((arm, b)) for arm in order]
        stable = [s.largest_stable_lr if s else None for s in rows]
        reading = ", ".join(f"{arm} {_fmt(lr)}" for arm, lr in zip(order, stable, strict=True))
        known = [lr or 0.0 for lr in stable]
        claim = f"batch {b}: the largest stable lr orders bn >= skipinit >= none"
        verdicts.append(_judge(claim, reading, known[0] >= known[1] >= known[2], *rows))
    return verdicts


def regularization_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    table = _by(summaries)
    verdicts = []
    for b in sorted({s.x for s in summaries}):
        bn, plain, reg = (table.get((arm, b)) for arm in ("bn", "skipinit", "skipinit-reg"))
        accuracy = {
            arm: (s.mean_acc if s and s.mean_acc is not None else 0.0)
            for arm, s in (("bn", bn), ("skipinit", plain), ("skipinit-reg", reg))
        }
        reading = ", ".join(f"{arm} {_pct(value)}" for arm, value in accuracy.items())
        gap = accuracy["bn"] - accuracy["skipinit"]
        left = accuracy["bn"] - accuracy["skipinit-reg"]
        if b == 1:
            claim, holds = "batch 1: Regularized SkipInit beats BN (instance norm)", left < 0
        else:
            claim = f"batch {b}: Regularized SkipInit closes at least half the gap to BN"
            holds = left <= max(gap / 2, 0.0)
        verdicts.append(_judge(claim, reading, holds, bn, plain, reg))
    return verdicts


VERDICTS = {
    "depth": depth_verdicts,
    "batch-size": batch_size_verdicts,
    "regularization": regularization_verdicts,
}


@dataclass(frozen=True)
class Report:
    experiment: str
    preset: str
    command: str
    readings: list[Reading]
    summaries: list[Summary]
    verdicts: list[Verdict]

    @property
    def finished(self) -> bool:
        return all(r.status != "missing" for r in self.readings)


def build_report(
    experiment: str, preset: str, points: list[GridPoint], out: Path, command: str
) -> Report:
    spec = EXPERIMENT_TABLE[experiment]
    chosen = spec.presets[preset]
    readings = read_runs(points, out, spec.axis)
    summaries = summarize(readings, chosen.keep)
    verdicts = VERDICTS[experiment](summaries, chosen.lrs)
    return Report(experiment, preset, command, readings, summaries, verdicts)


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def to_markdown(report: Report) -> str:
    spec = EXPERIMENT_TABLE[report.experiment]
    chosen = spec.presets[report.preset]
    axis = spec.axis.replace("_", " ")
    lines = [
        f"# skipfold reproduce {report.experiment}: {spec.title}",
        "",
        f"`{report.command}`",
        "",
        f"Preset `{report.preset}`: {len(report.readings)} runs, "
        f"{sum(r.status != 'missing' for r in report.readings)} finished. Per {axis} and arm: the "
        f"learning rate whose best {chosen.keep} of {chosen.seeds} seeds have the best mean test "
        "accuracy (a diverged run counts as chance), the mean and standard deviation of those "
        "seeds, their final training loss, and the runs that diverged at any learning rate.",
        "",
        f"| {axis} | arm | best lr | test accuracy | train loss | diverged | largest stable lr |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sorted(report.summaries, key=lambda s: (s.x, spec.arms.index(s.arm))):
        accuracy = (
            "-" if s.mean_acc is None else f"{100 * s.mean_acc:.2f} ± {100 * (s.std_acc or 0):.2f}%"
        )
        lines.append(
            f"| {s.x} | {s.arm} | {_fmt(s.best_lr)} | {accuracy} | {_fmt(s.train_loss)} | "
            f"{s.diverged}/{s.runs} | {_fmt(s.largest_stable_lr)} |"
        )
    lines += ["", "| the paper's claim | measured | agrees |", "| --- | --- | --- |"]
    for v in report.verdicts:
        agrees = "unfinished" if v.agrees is None else ("yes" if v.agrees else "no")
        lines.append(f"| {v.claim} | {v.reading} | {agrees} |")
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    document = {
        "experiment": report.experiment,
        "preset": report.preset,
        "command": report.command,
        "finished": report.finished,
        "summaries": [asdict(s) for s in report.summaries],
        "verdicts": [asdict(v) for v in report.verdicts],
        "runs": [asdict(r) for r in report.readings],
    }
    return json.dumps(document, indent=2) + "\n"


def plot(report: Report, path: Path) -> None:
    """Test accuracy and the optimal lr against depth or batch size, one line per arm."""
    from matplotlib.figure import Figure

    spec = EXPERIMENT_TABLE[report.experiment]
    fig = Figure(figsize=(11, 4), layout="constrained")
    acc_ax, lr_ax = fig.subplots(1, 2)
    for arm in spec.arms:
        rows = sorted((s for s in report.summaries if s.arm == arm), key=lambda s: s.x)
        xs = [s.x for s in rows]
        acc_ax.plot(xs, [100 * (s.mean_acc or 0.1) for s in rows], marker="o", label=arm)
        lr_ax.plot(xs, [s.best_lr or float("nan") for s in rows], marker="o", label=arm)
    axis = spec.axis.replace("_", " ")
    acc_ax.set(xlabel=axis, ylabel="test accuracy (%), best lr", xscale="log", title="accuracy")
    lr_ax.set(
        xlabel=axis, ylabel="optimal learning rate", xscale="log", yscale="log", title="optimal lr"
    )
    for ax in (acc_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"skipfold reproduce {report.experiment} --preset {report.preset}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def write_report(report: Report, out: Path) -> list[Path]:
    """report.md, report.json and report.png (if matplotlib is installed) in `out`."""
    written = [out / "report.md", out / "report.json"]
    write_bytes_atomic(written[0], to_markdown(report).encode())
    write_bytes_atomic(written[1], to_json(report).encode())
    try:
        plot(report, out / "report.png")
        written.append(out / "report.png")
    except ImportError:
        pass
    return written
