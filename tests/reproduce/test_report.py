import json

import pytest

from skipfold.reproduce.experiments import grid
from skipfold.reproduce.report import (
    Reading,
    batch_size_verdicts,
    build_report,
    depth_verdicts,
    read_runs,
    summarize,
    write_report,
)
from skipfold.training.run_folder import RunFolder


def trained(arm, x, lr, seed, acc, loss=0.1):
    return Reading(arm, x, lr, seed, "trained", acc, loss)


def test_best_lr_is_chosen_by_the_mean_of_the_best_seeds_and_divergence_counts_as_chance():
    readings = [
        trained("bn", 16, 0.1, 0, 0.95),
        trained("bn", 16, 0.1, 1, 0.50),  # one bad seed: dropped with keep=2 of 3
        trained("bn", 16, 0.1, 2, 0.93),
        trained("bn", 16, 0.05, 0, 0.92),
        trained("bn", 16, 0.05, 1, 0.92),
        trained("bn", 16, 0.05, 2, 0.91),
        Reading("bn", 16, 0.2, 0, "diverged"),
        trained("bn", 16, 0.2, 1, 0.99),
        trained("bn", 16, 0.2, 2, 0.20),
    ]
    (summary,) = summarize(readings, keep=2)
    assert summary.best_lr == 0.1
    assert summary.mean_acc == pytest.approx(0.94) and summary.std_acc == pytest.approx(0.01)
    assert (summary.diverged, summary.runs, summary.expected) == (1, 9, 9)
    assert summary.largest_stable_lr == 0.1 and not summary.at_chance


def test_a_network_that_diverges_or_stays_at_chance_at_every_lr_is_at_chance():
    readings = [Reading("none", 100, lr, 0, "diverged") for lr in (0.1, 0.05)]
    readings.append(trained("none", 100, 0.025, 0, 0.12))
    (summary,) = summarize(readings, keep=1)
    assert summary.at_chance and summary.largest_stable_lr == 0.025


def test_depth_verdicts_agree_with_a_grid_that_shows_the_claims_and_wait_for_missing_runs():
    lrs = (0.1, 0.05, 0.025)
    readings = []
    for depth in (10, 100):
        for lr in lrs:
            readings += [
                trained("bn", depth, lr, 0, 0.95 if lr == 0.1 else 0.9),
                trained("skipinit", depth, lr, 0, 0.93 if lr == 0.05 else 0.8),
                Reading("none", depth, lr, 0, "diverged"),
                Reading("skipinit alpha=1", depth, lr, 0, "diverged"),
            ]
    verdicts = depth_verdicts(summarize(readings, keep=1), lrs)
    assert [v.agrees for v in verdicts] == [True] * 5
    readings[-1] = Reading("skipinit alpha=1", 100, 0.025, 0, "missing")
    verdicts = depth_verdicts(summarize(readings, keep=1), lrs)
    assert verdicts[1].agrees is None and verdicts[0].agrees is True


def test_an_optimal_lr_that_moves_two_grid_steps_disagrees():
    lrs = (0.1, 0.05, 0.025)
    readings = [trained("skipinit", 10, lr, 0, 0.9 if lr == 0.1 else 0.5) for lr in lrs]
    readings += [trained("skipinit", 100, lr, 0, 0.9 if lr == 0.025 else 0.5) for lr in lrs]
    (verdict,) = [
        v for v in depth_verdicts(summarize(readings, 1), lrs) if "independent" in v.claim
    ]
    assert verdict.agrees is False and "depth 100: 0.025" in verdict.reading


def test_batch_size_verdicts_read_the_slope_of_the_optimal_lr():
    lrs = (0.4, 0.2, 0.1, 0.05)
    readings = []
    for batch, best in ((8, 0.05), (32, 0.2)):
        for arm in ("bn", "skipinit", "none"):
            readings += [trained(arm, batch, lr, 0, 0.9 if lr == best else 0.5) for lr in lrs]
    verdicts = batch_size_verdicts(summarize(readings, 1), lrs)
    slope = verdicts[0]
    assert slope.agrees is True and "slope 1.00" in slope.reading


def write_run(folder, point, rows):
    """A run folder as `skipfold train` leaves it, written without training."""
    from skipfold.models.spec import ModelSpec
    from skipfold.training.run_folder import DataSpec, RunConfig

    c = point.config
    spec = ModelSpec.create(c.variant, c.depth, c.width, **c.model_options())
    data = DataSpec(
        dataset="shapes",
        classes=list("abcdefghij"),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        input_size=(32, 32),
    )
    run = RunFolder(folder)
    run.path.mkdir(parents=True)
    run.write_config(RunConfig(model=spec, data=data, recipe=c))
    run.write_metrics(rows)
    if rows and "test_acc" in rows[-1]:
        (run / "model.safetensors").write_bytes(b"weights")


def test_runs_are_found_by_their_config_wherever_they_are_under_out(tmp_path):
    points = grid("depth", "smoke")
    bn, skipinit, none = points[0], points[1], points[4]
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.4, "test_acc": 0.85}
    write_run(tmp_path / "from-the-cluster" / "job-17", bn, [row])
    write_run(tmp_path / skipinit.name, skipinit, [{"epoch": 1, "train_loss": 2.0}])  # partial
    write_run(tmp_path / none.name, none, [{"epoch": 1, "step": 3, "diverged": True}])
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "config.json").write_text("{not json")  # ignored, not fatal
    readings = {r.arm: r for r in read_runs(points, tmp_path, "depth")}
    assert readings["bn"].status == "trained" and readings["bn"].test_acc == 0.85
    assert readings["skipinit"].status == "missing"
    assert readings["none"].status == "diverged"

    report = build_report("depth", "smoke", points, tmp_path, "skipfold reproduce depth")
    written = write_report(report, tmp_path)
    assert [p.name for p in written] == ["report.md", "report.json", "report.png"]
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["finished"] is False and len(document["runs"]) == len(points)
    assert "| 10 | bn | 0.05 | 85.00 ± 0.00% |" in (tmp_path / "report.md").read_text()
