"""The report of a grid: each reading beside the paper's claim, as markdown, JSON and a PNG."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skipfold.common.io import atomic_path, write_bytes_atomic
from skipfold.reproduce import figure1, learning_rate
from skipfold.reproduce.claims import VERDICTS, Verdict, fmt
from skipfold.reproduce.experiments import EXPERIMENT_TABLE, GridPoint
from skipfold.reproduce.figure1 import Curve
from skipfold.reproduce.readings import Reading, Summary, read_runs, summarize


@dataclass(frozen=True)
class Report:
    experiment: str
    preset: str
    command: str
    readings: list[Reading]
    summaries: list[Summary]
    verdicts: list[Verdict]
    curves: list[Curve] = field(default_factory=list)  # covariate-shift's Figure 1

    @property
    def finished(self) -> bool:
        return all(r.status != "missing" for r in self.readings)


@dataclass(frozen=True)
class CurveReading:
    """How an experiment whose claims are about training curves reads them: the curves of its
    arms, the verdicts on them, a markdown table and the plot (in place of the x-axis plot)."""

    read: Callable[[list[GridPoint], Path, list[Summary]], list[Curve]]
    verdicts: Callable[[list[Curve]], list[Verdict]]
    markdown: Callable[[list[Curve]], list[str]]
    plot: Callable[[list[Curve], Path, str], None]


CURVE_READINGS = {
    "covariate-shift": CurveReading(
        figure1.read, figure1.figure1_verdicts, figure1.curves_markdown, figure1.plot_figure1
    ),
    "learning-rate": CurveReading(
        learning_rate.read, learning_rate.verdicts, learning_rate.markdown, learning_rate.plot
    ),
}


def build_report(
    experiment: str, preset: str, points: list[GridPoint], out: Path, command: str
) -> Report:
    spec = EXPERIMENT_TABLE[experiment]
    chosen = spec.presets[preset]
    readings = read_runs(points, out, spec.axis)
    summaries = summarize(readings, chosen.keep)
    verdicts = VERDICTS[experiment](summaries, chosen.lrs)
    curves = []
    if experiment in CURVE_READINGS:
        reading = CURVE_READINGS[experiment]
        curves = reading.read(points, out, summaries)
        verdicts += reading.verdicts(curves)
    return Report(experiment, preset, command, readings, summaries, verdicts, curves)


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
        "seeds, their final training loss, the runs that diverged at any learning rate, and the "
        "largest learning rate up to which no run diverged.",
        "",
        f"| {axis} | arm | best lr | test accuracy | train loss | diverged | largest stable lr |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sorted(report.summaries, key=lambda s: (s.x, spec.arms.index(s.arm))):
        accuracy = (
            "-"
            if s.mean_acc is None
            else f"{100 * s.mean_acc:.2f}%"
            if s.std_acc is None
            else f"{100 * s.mean_acc:.2f} ± {100 * s.std_acc:.2f}%"
        )
        lines.append(
            f"| {s.x} | {s.arm} | {fmt(s.best_lr)} | {accuracy} | {fmt(s.train_loss)} | "
            f"{s.diverged}/{s.runs} | {fmt(s.largest_stable_lr)} |"
        )
    if report.experiment in CURVE_READINGS:
        lines += CURVE_READINGS[report.experiment].markdown(report.curves)
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
        "curves": [asdict(c) for c in report.curves],
        "runs": [asdict(r) for r in report.readings],
    }
    return json.dumps(document, indent=2) + "\n"


def plot(report: Report, path: Path) -> None:
    """Test accuracy at the best lr, and that lr, against depth or batch size: one line per arm.
    An arm whose every run diverged is an x at chance; the lr panel leaves out arms at chance."""
    from matplotlib.figure import Figure

    spec = EXPERIMENT_TABLE[report.experiment]
    fig = Figure(figsize=(11, 4), layout="constrained")
    acc_ax, lr_ax = fig.subplots(1, 2)
    for arm in spec.arms:
        rows = sorted((s for s in report.summaries if s.arm == arm), key=lambda s: s.x)
        line = acc_ax.plot(
            [s.x for s in rows], [100 * (s.mean_acc or 0.1) for s in rows], marker="o", label=arm
        )[0]
        diverged = [s.x for s in rows if s.mean_acc is None and s.runs]
        acc_ax.scatter(diverged, [10] * len(diverged), marker="x", s=80, color=line.get_color())
        learned = [s for s in rows if s.best_lr is not None and not s.at_chance]
        lr_ax.plot([s.x for s in learned], [s.best_lr for s in learned], marker="o", label=arm)
    xs = sorted({s.x for s in report.summaries})
    axis = spec.axis.replace("_", " ")
    acc_ax.set(
        xlabel=axis, ylabel="test accuracy (%) at the best lr", title="x: every run diverged"
    )
    lr_ax.set(xlabel=axis, ylabel="best learning rate", yscale="log", title="arms above chance")
    lrs = sorted({r.lr for r in report.readings})
    lr_ax.set_yticks(lrs, [f"{lr:g}" for lr in lrs])
    for ax in (acc_ax, lr_ax):
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.minorticks_off()
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
        if report.experiment in CURVE_READINGS:
            title = f"skipfold reproduce {report.experiment} --preset {report.preset}"
            CURVE_READINGS[report.experiment].plot(report.curves, out / "report.png", title)
        else:
            plot(report, out / "report.png")
        written.append(out / "report.png")
    except ImportError:
        pass
    return written
