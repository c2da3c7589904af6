import pytest

from skipfold.reproduce.readings import Reading, summarize


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


def test_the_largest_stable_lr_stops_at_the_first_lr_that_diverged():
    readings = [
        trained("skipinit", 32, 0.025, 0, 0.6),
        trained("skipinit", 32, 0.05, 0, 0.9),
        Reading("skipinit", 32, 0.1, 0, "diverged"),
        trained("skipinit", 32, 0.4, 0, 0.1),  # survived by luck, above an lr that diverged
    ]
    (summary,) = summarize(readings, keep=1)
    assert summary.largest_stable_lr == 0.05 and summary.best_lr == 0.05
