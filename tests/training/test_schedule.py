import pytest

from skipfold.training.schedule import learning_rate, lr_factor


def test_skipinit_schedule_is_the_papers_200_epoch_recipe_scaled():
    at = {e: lr_factor("skipinit", e / 200) for e in (0, 99, 100, 109, 110, 119, 120, 199)}
    assert at == {0: 1, 99: 1, 100: 0.5, 109: 0.5, 110: 0.25, 119: 0.25, 120: 0.125, 199: 0.5**10}


def test_wrn_steps_and_cosine():
    assert [lr_factor("wrn-step", e / 200) for e in (59, 60, 120, 160)] == pytest.approx(
        [1, 0.2, 0.04, 0.008]
    )
    assert lr_factor("cosine", 0) == 1 and lr_factor("cosine", 0.5) == pytest.approx(0.5)


def test_linear_warmup_then_schedule():
    lrs = [learning_rate(0.1, "constant", s, 100, warmup_steps=4) for s in range(6)]
    assert lrs == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="skipinit, wrn-step, cosine, constant"):
        lr_factor("onecycle", 0.1)
