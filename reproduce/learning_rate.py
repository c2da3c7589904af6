"""The BN paper's learning-rate claims (its Figure 2 and Table 1, Inception on ImageNet) read from
a learning-rate grid: the baseline without BN at its best learning rate; BN at 1, 5 and 30 times
that rate; BN with sigmoids at 5 times; sigmoids without BN at their best rate.

Each arm's curve is read at its rate: the steps it takes to reach the baseline's final accuracy
(one point below it, as figure1.py reads Figure 1) and its final accuracy.
"""

from __future__ import annotations

from pathlib import Path

from skipfold.reproduce.claims import Verdict, fmt
from skipfold.reproduce.experiments import ARMS, GridPoint
from skipfold.reproduce.figure1 import AT_CHANCE, Curve, read_curves
from skipfold.reproduce.readings import Summary

BASELINE, SIGMOID_BASELINE = "none", "none sigmoid"
SCALED = ("bn", "bn x5", "bn x30", "bn sigmoid x5")  # at the baseline's best lr times lr_scale


def chosen_lrs(summaries: list[Summary]) -> dict[str, float]:
    """The learning rate each arm is read at (the baselines: their best)."""
    by_arm = {s.arm: s for s in summaries}
    lrs = {}
    for arm in (BASELINE, SIGMOID_BASELINE):
        if by_arm.get(arm) and by_arm[arm].best_lr is not None:
            lrs[arm] = by_arm[arm].best_lr
    if BASELINE in lrs:
        lrs |= {arm: lrs[BASELINE] * ARMS[arm].lr_scale for arm in SCALED}
    return lrs


def read(points: list[GridPoint], out: Path, summaries: list[Summary]) -> list[Curve]:
    return read_curves(points, out, chosen_lrs(summaries))


def _target(curves: dict[str, Curve]) -> float | None:
    baseline = curves.get(BASELINE)
    return None if baseline is None or baseline.diverged else baseline.final - 0.01


def verdicts(curves_found: list[Curve]) -> list[Verdict]:
    curves = {c.arm: c for c in curves_found}
    target = _target(curves)

    def steps(arm: str) -> int | None:
        curve = curves.get(arm)
        return None if curve is None or target is None else curve.steps_to(target)

    def final(arm: str) -> float | None:
        return curves[arm].final if arm in curves else None

    def fewer(a: str, b: str) -> bool | None:
        if a not in curves or b not in curves:
            return None
        return steps(a) is not None and (steps(b) is None or steps(a) < steps(b))

    def reading(*arms: str) -> str:
        return ", ".join(f"{arm} {fmt(steps(arm))} steps" for arm in arms)

    done = all(arm in curves for arm in (BASELINE, *SCALED))
    sigmoid = final("bn sigmoid x5"), final(SIGMOID_BASELINE)
    return [
        Verdict(
            "BN at the baseline's learning rate reaches the baseline's final accuracy in fewer "
            "steps",
            reading("bn", BASELINE),
            fewer("bn", BASELINE),
        ),
        Verdict(
            "BN-x5 reaches it in fewer steps still", reading("bn x5", "bn"), fewer("bn x5", "bn")
        ),
        Verdict(
            "BN-x30 ends at a higher accuracy than BN-x5",
            f"BN-x30 {_pct(final('bn x30'))}, BN-x5 {_pct(final('bn x5'))}",
            (final("bn x30") or 0) > (final("bn x5") or 0) if done else None,
        ),
        Verdict(
            "with sigmoids, BN-x5 trains while the network without BN stays at chance",
            f"BN-x5-sigmoid {_pct(sigmoid[0])}, sigmoid without BN {_pct(sigmoid[1])}",
            None if None in sigmoid else sigmoid[0] >= AT_CHANCE and sigmoid[1] < AT_CHANCE,
        ),
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def markdown(curves: list[Curve]) -> list[str]:
    target = _target({c.arm: c for c in curves})
    title = "steps to the baseline's final accuracy" + (
        "" if target is None else f" less one point ({100 * target:.1f}%)"
    )
    lines = ["", f"| arm | lr | final test accuracy | {title} |", "| --- | ---: | ---: | ---: |"]
    for c in curves:
        reached = None if target is None else c.steps_to(target)
        final = "diverged" if c.diverged else f"{100 * c.final:.2f}%"
        lines.append(f"| {c.arm} | {fmt(c.lr)} | {final} | {fmt(reached)} |")
    return lines


def plot(curves: list[Curve], path: Path, title: str) -> None:
    """Test accuracy against steps, one line per arm at its learning rate (the paper's Fig. 2)."""
    from matplotlib.figure import Figure

    from skipfold.common.io import atomic_path

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for curve in curves:
        label = f"{curve.arm} (lr {curve.lr:g}{', diverged' if curve.diverged else ''})"
        ax.plot(curve.steps, [100 * a for a in curve.accuracy], marker=".", label=label)
    target = _target({c.arm: c for c in curves})
    if target is not None:
        ax.axhline(100 * target, color="gray", linestyle=":", label="the baseline's final, less 1")
    ax.set(xlabel="training steps", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
