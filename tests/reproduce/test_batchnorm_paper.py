"""The BN paper's experiments: their grids, and the readings that judge their claims, on run
folders written by hand with known curves."""

import json

import pytest

from skipfold.reproduce.claims import initialization_verdicts
from skipfold.reproduce.experiments import grid
from skipfold.reproduce.figure1 import Curve, figure1_verdicts
from skipfold.reproduce.readings import Reading, summarize
from skipfold.reproduce.report import build_report
from tests.reproduce.test_report import write_run


def test_the_covariate_shift_grid_is_the_papers_mnist_network_and_schedule():
    points = grid("covariate-shift", "cpu")
    assert {p.arm for p in points} == {"mlp bn", "mlp without bn"}
    for p in points:
        c = p.config
        assert (c.architecture, c.depth, c.width, c.activation) == ("mlp", 3, 100, "sigmoid")
        assert (c.dataset, c.batch_size, c.schedule, c.flip, c.crop_padding) == (
            "mnist", 60, "constant", False, 0
        )  # fmt: skip
        assert c.epochs * (4000 // c.batch_size) == 49_500  # the paper: 50,000 steps of 60
    assert {p.config.variant for p in points if p.arm == "mlp bn"} == {"bn"}


def test_the_initialization_grid_scales_every_weight_from_a_tenth_to_ten_times():
    points = grid("initialization", "cpu")
    assert sorted({p.config.init_scale for p in points}) == [0.1, 0.3, 1.0, 3.0, 10.0]
    assert {p.config.variant for p in points} == {"bn", "none"}
    assert len({p.name for p in points}) == len(points)


def _curve(arm, accuracy, medians, spread=2.0):
    steps = [100 * (i + 1) for i in range(len(accuracy))]
    band = [[m - spread / 2, m, m + spread / 2] for m in medians]
    return Curve(arm, 0.5, steps, accuracy, band)


def test_figure1_readings_steps_to_an_accuracy_and_the_drift_of_the_median():
    bn = _curve("mlp bn", [0.5, 0.9, 0.95, 0.96], [0.0, 0.1, 0.1, 0.0])
    plain = _curve("mlp without bn", [0.1, 0.5, 0.8, 0.93], [0.0, 1.0, 2.0, 3.0])
    assert bn.steps_to(0.92) == 300 and plain.steps_to(0.92) == 400
    assert bn.drift == pytest.approx(0.1 / 2.0)  # medians after the first tenth: 0 .. 0.1
    assert plain.drift == pytest.approx(3.0 / 2.0)
    sooner, drift = figure1_verdicts([bn, plain])
    assert sooner.agrees and drift.agrees
    assert "with BN 300 steps, without 400" in sooner.reading  # to 92%: 93% less one point
    slower, _ = figure1_verdicts([_curve("mlp bn", [0.1, 0.2, 0.5, 0.96], [0] * 4), plain])
    assert slower.agrees is False  # 92% at 400 steps against 400: not fewer
    stuck = _curve("mlp without bn", [0.1, 0.1, 0.11, 0.1], [0.0] * 4)
    trained, _ = figure1_verdicts([bn, stuck])
    assert trained.agrees is True and "stays at chance" in trained.reading


def test_initialization_verdict_compares_the_ranges_of_accuracy_over_scales():
    readings = [
        Reading("bn", x, 0.05, 0, "trained", test_acc=acc, train_loss=0.1)
        for x, acc in ((0.1, 0.90), (1.0, 0.93), (10.0, 0.88))
    ] + [
        Reading("none", 0.1, 0.05, 0, "trained", test_acc=0.40, train_loss=1.0),
        Reading("none", 1.0, 0.05, 0, "trained", test_acc=0.92, train_loss=0.1),
        Reading("none", 10.0, 0.05, 0, "diverged"),
    ]
    (verdict,) = initialization_verdicts(summarize(readings, keep=1), (0.05,))
    assert verdict.agrees is True
    assert "range with BN 5.0%, without 82.0%" in verdict.reading  # none x10 counts as chance


def test_the_covariate_shift_report_reads_the_curves_of_each_arms_best_lr(tmp_path):
    points = grid("covariate-shift", "smoke")
    for point in points:
        bn = point.arm == "mlp bn"
        rows = [
            {
                "epoch": e,
                "train_loss": 0.1,
                "test_acc": (0.6, 0.9)[e - 1] if bn else (0.3, 0.7)[e - 1],
                "watched_p15": -1.0,
                "watched_p50": 0.0 if bn else float(e),
                "watched_p85": 1.0,
            }
            for e in (1, 2)
        ]
        write_run(tmp_path / point.name, point, rows)
        config = json.loads((tmp_path / point.name / "config.json").read_text())
        config["data"]["train_images"] = 600
        (tmp_path / point.name / "config.json").write_text(json.dumps(config))
    report = build_report("covariate-shift", "smoke", points, tmp_path, "skipfold reproduce")
    steps = {c.arm: c.steps for c in report.curves}
    assert steps == {"mlp bn": [10, 20], "mlp without bn": [10, 20]}  # 600 images / 60 a step
    claims = {v.claim.split(" (")[0]: v.agrees for v in report.verdicts}
    assert claims["with BN the MNIST network ends at a higher test accuracy"] is True


def test_the_learning_rate_grid_runs_bn_at_5_and_30_times_every_baseline_lr():
    points = grid("learning-rate", "cpu")
    lrs = {arm: sorted({p.config.lr for p in points if p.arm == arm}) for arm in {"none", "bn x30"}}
    assert lrs["bn x30"] == pytest.approx([30 * lr for lr in lrs["none"]])
    sigmoid = {p.config.activation for p in points if "sigmoid" in p.arm}
    assert sigmoid == {"sigmoid"}
    assert {p.config.activation for p in points if "sigmoid" not in p.arm} == {"relu"}


def test_learning_rate_claims_read_each_arm_at_the_baselines_best_lr_times_its_scale():
    from skipfold.reproduce.learning_rate import chosen_lrs, verdicts

    readings = [
        Reading("none", 10, lr, 0, "trained", test_acc=acc, train_loss=0.1)
        for lr, acc in ((0.05, 0.80), (0.025, 0.90))
    ] + [
        Reading("none sigmoid", 10, lr, 0, "trained", test_acc=0.1, train_loss=2.3)
        for lr in (0.05, 0.025)
    ]
    lrs = chosen_lrs(summarize(readings, keep=1))
    assert lrs["none"] == 0.025 and lrs["bn x5"] == pytest.approx(0.125)
    assert lrs["bn x30"] == pytest.approx(0.75) and lrs["bn"] == 0.025
    curves = [
        Curve("none", 0.025, [100, 200, 300], [0.5, 0.8, 0.90], []),
        Curve("bn", 0.025, [100, 200, 300], [0.6, 0.9, 0.95], []),
        Curve("bn x5", 0.125, [100, 200, 300], [0.9, 0.95, 0.96], []),
        Curve("bn x30", 0.75, [100, 200, 300], [0.5, 0.9, 0.97], []),
        Curve("bn sigmoid x5", 0.125, [100, 200, 300], [0.3, 0.6, 0.85], []),
        Curve("none sigmoid", 0.05, [100, 200, 300], [0.1, 0.1, 0.1], []),
    ]
    found = {v.claim.split(" reaches")[0].split(" ends")[0]: v for v in verdicts(curves)}
    assert [v.agrees for v in found.values()] == [True, True, True, True]
    assert found["BN at the baseline's learning rate"].reading == "bn 200 steps, none 300 steps"
    assert verdicts(curves[:1])[0].agrees is None  # the BN arm has not finished


def test_dropout_claim_compares_bn_with_and_without_dropout():
    from skipfold.reproduce.claims import dropout_verdicts

    readings = [
        Reading("bn", 10, 0.05, 0, "trained", test_acc=0.80, train_loss=0.5),
        Reading("bn dropout", 10, 0.05, 0, "trained", test_acc=0.802, train_loss=0.7),
    ]
    (verdict,) = dropout_verdicts(summarize(readings, keep=1), (0.05,))
    assert verdict.agrees is True  # 0.2 points below: within half a point
    assert "train loss 0.500" in verdict.reading
