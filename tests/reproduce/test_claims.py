from skipfold.reproduce.claims import batch_size_verdicts, depth_verdicts
from skipfold.reproduce.readings import Reading, summarize
from tests.reproduce.test_readings import trained


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
                trained("none /sqrt(2)", depth, lr, 0, 0.11, loss=2.3),  # stable, untrained
            ]
    verdicts = depth_verdicts(summarize(readings, keep=1), lrs)
    assert [v.agrees for v in verdicts] == [True] * 6
    readings[-2] = Reading("skipinit alpha=1", 100, 0.025, 0, "missing")
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
