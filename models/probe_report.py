"""Tables and plots of `models.probe` results, for people rather than programs."""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

from skipfold.common.io import atomic_path

Result = dict[str, Any]


def branch_share(row: dict[str, Any]) -> float:
    """The residual branch's share of the block output's variance (the paper's 1/(l+1))."""
    out = row["out_var"]
    if not math.isfinite(out) or out == 0:
        return math.nan
    return row["branch_var"] / out


def stage_summary(result: Result) -> list[dict[str, Any]]:
    """Per stage: output variance at its first and last block, the geometric mean growth per
    identity-shortcut block, and the branch share at its last block."""
    summary = []
    for stage in sorted({row["stage"] for row in result["blocks"]}):
        rows = [row for row in result["blocks"] if row["stage"] == stage]
        ratios = [
            row["out_var"] / row["skip_var"]
            for row in rows
            if row["shortcut"] == "identity" and row["skip_var"] > 0
        ]
        finite = [r for r in ratios if math.isfinite(r) and r > 0]
        growth = math.exp(sum(map(math.log, finite)) / len(finite)) if finite else math.nan
        summary.append(
            {
                "stage": stage,
                "blocks": len(rows),
                "out_var_first": rows[0]["out_var"],
                "out_var_last": rows[-1]["out_var"],
                "growth_per_block": growth,
                "branch_share_last": branch_share(rows[-1]),
            }
        )
    return summary


def _title(result: Result) -> str:
    alpha = result.get("alpha_init")
    suffix = f", alpha_init {alpha:g}" if alpha not in (None, 0.0) else ""
    return f"WRN-{result['depth']}-{result['width']} {result['variant']}{suffix}"


def format_blocks(result: Result) -> str:
    """One row per residual block."""
    lines = [
        f"{_title(result)}: variance at initialization "
        f"(N(0,1) inputs, batch {result['batch']}, seed {result['seed']}, BN in training mode)",
        f"{'block':>5} {'stage':>5} {'shortcut':>8} {'skip_var':>11} {'branch_var':>11} "
        f"{'out_var':>11} {'branch/out':>10}",
    ]
    for row in result["blocks"]:
        lines.append(
            f"{row['index']:>5} {row['stage']:>5} {row['shortcut']:>8} {row['skip_var']:>11.4g} "
            f"{row['branch_var']:>11.4g} {row['out_var']:>11.4g} {branch_share(row):>10.3f}"
        )
    return "\n".join(lines)


def format_comparison(results: list[Result]) -> str:
    """One row per variant and stage: how the variance evolves along each stage."""
    first = results[0]
    lines = [
        f"WRN-{first['depth']}-{first['width']}: variance at initialization by stage "
        f"(N(0,1) inputs, batch {first['batch']}, seed {first['seed']})",
        f"{'variant':<13} {'stage':>5} {'blocks':>6} {'out_var first':>13} {'out_var last':>12} "
        f"{'x per block':>11} {'branch share (last)':>19}",
    ]
    for result in results:
        for s in stage_summary(result):
            lines.append(
                f"{result['variant']:<13} {s['stage']:>5} {s['blocks']:>6} "
                f"{s['out_var_first']:>13.4g} {s['out_var_last']:>12.4g} "
                f"{s['growth_per_block']:>11.3f} {s['branch_share_last']:>19.3f}"
            )
    lines.append(
        "x per block: geometric mean of out_var/skip_var over identity-shortcut blocks "
        "(2 = doubling, 1 = identity); branch share: branch_var/out_var"
    )
    return "\n".join(lines)


def plot(results: list[Result], path: str | os.PathLike[str]) -> None:
    """Log variance and branch share against block index; stage boundaries dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    var_ax, share_ax = fig.subplots(1, 2)
    single = len(results) == 1
    for result in results:
        index = [row["index"] for row in result["blocks"]]
        keys = ("skip_var", "branch_var", "out_var") if single else ("out_var",)
        for key in keys:
            points = [(r["index"], r[key]) for r in result["blocks"] if r[key] > 0]
            label = key if single else result["variant"]
            if points:
                xs, ys = zip(*points, strict=True)
                var_ax.plot(xs, ys, label=label, marker="." if len(index) < 60 else None)
            else:
                var_ax.plot([], [], label=f"{label} = 0 everywhere")
        share_ax.plot(
            index,
            [branch_share(row) for row in result["blocks"]],
            label=result["variant"],
        )
    blocks = results[0]["blocks"]
    stage_starts = [b["index"] for a, b in itertools.pairwise(blocks) if a["stage"] != b["stage"]]
    theory, first_of_stage = [], {}
    for row in blocks:
        j = row["index"] - first_of_stage.setdefault(row["stage"], row["index"]) + 1
        theory.append(1 / (j + 1))
    share_ax.plot(
        [row["index"] for row in blocks], theory, "k:", linewidth=1, label="1/(j+1), j-th of stage"
    )
    for ax in (var_ax, share_ax):
        for start in stage_starts:
            ax.axvline(start - 0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("residual block")
        ax.legend(fontsize="small")
    var_ax.set_yscale("log")
    var_ax.set_ylabel("variance")
    var_ax.set_title("variance at initialization" + (f": {_title(results[0])}" if single else ""))
    share_ax.set_ylabel("branch_var / out_var")
    share_ax.set_ylim(-0.02, 1.02)
    share_ax.set_title("branch share of the block output")
    if not single:
        fig.suptitle(f"WRN-{results[0]['depth']}-{results[0]['width']}, all variants")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
