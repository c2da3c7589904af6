"""The paper's claims, each judged against the summaries of a grid: agrees, disagrees, or open
while runs it rests on are missing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from skipfold.reproduce.readings import Summary


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
    for arm in ("none", "skipinit alpha=1", "none /sqrt(2)"):
        s = table.get((arm, deepest))
        reading = f"{s.diverged}/{s.runs} runs diverged, best {_pct(s.mean_acc)}" if s else "-"
        claim = f"{arm} cannot be trained at depth {deepest}: diverges or stays at chance"
        verdicts.append(_judge(claim, reading, bool(s and s.at_chance), s))
    for arm in ("bn", "skipinit"):
        s = table.get((arm, deepest))
        reading = f"{_pct(s.mean_acc)} at lr {fmt(s.best_lr)}" if s else "-"
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
    for arm in ("bn", "skipinit"):
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
    for b in batches:
        bn, plain = table.get(("bn", b)), table.get(("skipinit", b))
        lrs_ = (bn.best_lr if bn else None, plain.best_lr if plain else None)
        apart = abs(math.log2(lrs_[0] / lrs_[1])) if None not in lrs_ else math.inf
        verdicts.append(
            _judge(
                f"batch {b}: bn and skipinit have about the same optimal lr (one grid step)",
                f"bn {fmt(lrs_[0])}, skipinit {fmt(lrs_[1])}",
                apart <= 1.0 + 1e-9,
                bn,
                plain,
            )
        )
    order = ("bn", "skipinit", "none")
    for b in batches:
        rows = [table.get((arm, b)) for arm in order]
        stable = [s.largest_stable_lr if s else None for s in rows]
        reading = ", ".join(f"{arm} {fmt(lr)}" for arm, lr in zip(order, stable, strict=True))
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


def covariate_shift_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    """Figure 1 (a)'s end point; its curves are judged in figure1.py."""
    table = {s.arm: s for s in summaries}
    bn, plain = table.get("mlp bn"), table.get("mlp without bn")
    accuracy = [s.mean_acc if s and s.mean_acc is not None else 0.0 for s in (bn, plain)]
    return [
        _judge(
            "with BN the MNIST network ends at a higher test accuracy",
            f"with BN {_pct(accuracy[0])}, without {_pct(accuracy[1])}",
            accuracy[0] > accuracy[1],
            bn,
            plain,
        )
    ]


def initialization_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    """The paper: with BN, training is "less careful about initialization"."""
    rows = {
        arm: sorted((s for s in summaries if s.arm == arm), key=lambda s: s.x)
        for arm in ("bn", "none")
    }
    spread = {}
    for arm, found in rows.items():
        accuracies = [s.mean_acc if s.mean_acc is not None else 0.1 for s in found]
        spread[arm] = max(accuracies) - min(accuracies) if accuracies else None
    reading = ", ".join(
        f"{arm}: " + " / ".join(f"x{s.x:g} {_pct(s.mean_acc)}" for s in found)
        for arm, found in rows.items()
    )
    both = [*rows["bn"], *rows["none"]]
    return [
        _judge(
            "across initialization scales 0.1 to 10, the final accuracy varies less with BN than "
            "without (range of the best accuracy per scale)",
            f"range with BN {_pct(spread['bn'])}, without {_pct(spread['none'])} ({reading})",
            None not in spread.values() and spread["bn"] < spread["none"],
            *both,
        )
    ]


def learning_rate_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    """All read from the curves (learning_rate.py)."""
    return []


def dropout_verdicts(summaries: list[Summary], lrs: tuple[float, ...]) -> list[Verdict]:
    """The paper removed dropout from BN-Inception "without increasing overfitting"."""
    table = {s.arm: s for s in summaries}
    plain, dropped = table.get("bn"), table.get("bn dropout")
    accuracy = [s.mean_acc if s and s.mean_acc is not None else 0.0 for s in (plain, dropped)]
    losses = [fmt(s.train_loss if s else None, ".3f") for s in (plain, dropped)]
    return [
        _judge(
            "BN without dropout is as accurate as BN with dropout (within half a point)",
            f"without dropout {_pct(accuracy[0])} (train loss {losses[0]}), with dropout "
            f"{_pct(accuracy[1])} (train loss {losses[1]})",
            accuracy[0] >= accuracy[1] - 0.005,
            plain,
            dropped,
        )
    ]


VERDICTS = {
    "depth": depth_verdicts,
    "batch-size": batch_size_verdicts,
    "regularization": regularization_verdicts,
    "covariate-shift": covariate_shift_verdicts,
    "initialization": initialization_verdicts,
    "learning-rate": learning_rate_verdicts,
    "dropout": dropout_verdicts,
}


def fmt(value: float | None, spec: str = ".4g") -> str:
    """A figure for a table, "-" where there is none."""
    return "-" if value is None else format(value, spec)
