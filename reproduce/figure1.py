"""The BN paper's Figure 1 from a covariate-shift grid: test accuracy against training steps for
the network with and without BN (a), and the 15th, 50th and 85th percentiles of one last-layer
sigmoid's input over training (b: without BN, c: with BN), each arm at its best learning rate.

Two readings judge the figure's claims: the steps each arm takes to reach the accuracy the
network without BN ends at (one point below it), and the drift of the sigmoid's input, the
range its median covers after the first tenth of training, in units of its final 15-85
spread (0: no drift; 1: the median moved by as much as the distribution is wide).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from skipfold.common.io import atomic_path
from skipfold.reproduce.claims import Verdict, fmt
from skipfold.reproduce.experiments import GridPoint
from skipfold.reproduce.readings import Summary, run_folders

BAND = ("watched_p15", "watched_p50", "watched_p85")
SETTLING = 0.1  # the drift is measured after this fraction of training
CHANCE = 0.1  # ten classes
AT_CHANCE = CHANCE + 0.05  # within 5 points of chance


@dataclass(frozen=True)
class Curve:
    """One arm at its best learning rate, over training."""

    arm: str
    lr: float
    steps: list[int]  # at the end of each epoch
    accuracy: list[float]  # test accuracy, the mean over the arm's seeds at this lr
    band: list[list[float]]  # the first seed's 15th, 50th and 85th percentiles, per epoch
    diverged: bool = False  # a seed's loss became NaN: no curve, its accuracy is chance's

    @property
    def final(self) -> float:
        return CHANCE if self.diverged or not self.accuracy else self.accuracy[-1]

    def steps_to(self, accuracy: float) -> int | None:
        return next(
            (s for s, a in zip(self.steps, self.accuracy, strict=True) if a >= accuracy), None
        )

    @property
    def drift(self) -> float | None:
        """The range of the median after the first tenth of training over the final spread."""
        if not self.band:
            return None
        start = int(len(self.band) * SETTLING)
        medians = [row[1] for row in self.band[start:]]
        spread = self.band[-1][2] - self.band[-1][0]
        return (max(medians) - min(medians)) / spread if spread > 0 else None


def best_lrs(summaries: list[Summary]) -> dict[str, float]:
    """Each arm's learning rate, as its summary chose it."""
    return {s.arm: s.best_lr for s in summaries if s.best_lr is not None}


def read_curves(points: list[GridPoint], out: Path, lrs: dict[str, float]) -> list[Curve]:
    """The curve of each arm at its learning rate in `lrs`, where every seed finished."""
    folders = run_folders(points, out)
    curves = []
    for arm, lr in lrs.items():
        chosen = [p for p in points if p.arm == arm and p.config.lr == lr]
        runs = [folders[p.name] for p in sorted(chosen, key=lambda p: p.config.seed)]
        if (
            runs
            and all(runs)
            and any(r.get("diverged") for run in runs for r in run.read_metrics())
        ):
            curves.append(Curve(arm, lr, [], [], [], diverged=True))
            continue
        if not chosen or any(
            r is None or not r.is_complete(p.config.epochs)
            for r, p in zip(runs, chosen, strict=True)
        ):
            continue
        every = [[row for row in run.read_metrics() if "test_acc" in row] for run in runs]
        per_epoch = runs[0].read_config().data.train_images // chosen[0].config.batch_size
        steps = [row["epoch"] * per_epoch for row in every[0]]
        accuracy = [
            statistics.fmean(rows[i]["test_acc"] for rows in every) for i in range(len(steps))
        ]
        band = [[row[key] for key in BAND] for row in every[0] if all(k in row for k in BAND)]
        curves.append(Curve(arm, lr, steps, accuracy, band))
    return curves


def read(points: list[GridPoint], out: Path, summaries: list[Summary]) -> list[Curve]:
    """Each arm's curve at its best learning rate."""
    return read_curves(points, out, best_lrs(summaries))


def figure1_verdicts(curves: list[Curve]) -> list[Verdict]:
    by_arm = {c.arm: c for c in curves}
    bn, plain = by_arm.get("mlp bn"), by_arm.get("mlp without bn")
    if bn is None or plain is None:
        return [
            Verdict(
                "with BN the network reaches the accuracy it ends at without BN in fewer steps",
                "-",
                None,
            ),
            Verdict("with BN a last-layer sigmoid's input drifts less over training", "-", None),
        ]
    claim = "with BN the network reaches the accuracy it ends at without BN in fewer steps"
    if plain.final < AT_CHANCE:
        sooner = Verdict(
            claim,
            f"without BN it stays at chance ({100 * plain.final:.1f}%); with BN it ends "
            f"at {100 * bn.final:.1f}%",
            bn.final >= AT_CHANCE,
        )
    else:
        target = plain.final - 0.01
        fast, slow = bn.steps_to(target), plain.steps_to(target)
        sooner = Verdict(
            f"{claim} (one point below it: {100 * target:.1f}%)",
            f"with BN {fmt(fast)} steps, without {fmt(slow)}",
            fast is not None and slow is not None and fast < slow,
        )
    drift = Verdict(
        "with BN a last-layer sigmoid's input drifts less over training (median's range after "
        "the first tenth, over the final 15-85 spread)",
        f"with BN {fmt(bn.drift, '.2f')}, without {fmt(plain.drift, '.2f')}",
        bn.drift is not None and plain.drift is not None and bn.drift < plain.drift,
    )
    return [sooner, drift]


def curves_markdown(curves: list[Curve]) -> list[str]:
    lines = ["", "| arm | lr | final test accuracy | steps to 90% | steps to 95% | drift |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c in curves:
        lines.append(
            f"| {c.arm} | {fmt(c.lr)} | {_final(c)} | {fmt(c.steps_to(0.9))} | "
            f"{fmt(c.steps_to(0.95))} | {fmt(c.drift, '.2f')} |"
        )
    return lines


def _final(curve: Curve) -> str:
    return "diverged" if curve.diverged else f"{100 * curve.final:.2f}%"


def plot_figure1(curves: list[Curve], path: Path, title: str) -> None:
    """(a) test accuracy against steps; (b, c) the sigmoid input's percentiles, per arm."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4), layout="constrained")
    curves = [c for c in curves if not c.diverged]
    axes = fig.subplots(1, 1 + len(curves), sharex=True)
    for curve in curves:
        axes[0].plot(
            curve.steps, [100 * a for a in curve.accuracy], label=f"{curve.arm} (lr {curve.lr:g})"
        )
    axes[0].set(xlabel="training steps", ylabel="test accuracy (%)", title="(a) test accuracy")
    axes[0].set_ylim(bottom=80 if all(c.final > 0.85 for c in curves) else 0)
    axes[0].legend(fontsize="small")
    for ax, curve in zip(axes[1:], curves, strict=True):
        steps = curve.steps[: len(curve.band)]
        for i, name in enumerate(("15th", "50th", "85th")):
            ax.plot(steps, [row[i] for row in curve.band], label=f"{name} percentile")
        ax.set(xlabel="training steps", ylabel="input of a last-layer sigmoid", title=curve.arm)
        ax.legend(fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
