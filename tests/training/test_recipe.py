"""The recipes: what fills the fields a user leaves out, and what a user gives explicitly."""

import pytest

from skipfold.cli import build_parser
from skipfold.training.cli import config_from_args
from skipfold.training.config import RECIPE_DEFAULTS, TrainConfig


def parse(*argv):
    return config_from_args(build_parser("train").parse_args(["train", *argv, "--out", "r"]))


def test_the_paper_recipe_is_one_flag_away():
    paper = parse("--recipe", "paper")
    assert (paper.batch_size, paper.lr, paper.schedule) == (64, 0.05, "skipinit")
    assert (paper.momentum, paper.weight_decay, paper.standardize) == (0.9, 5e-4, "per-image")
    default = parse()
    assert (default.recipe, default.batch_size, default.schedule) == ("skipfold", 16, "cosine")


@pytest.mark.parametrize("recipe", sorted(RECIPE_DEFAULTS))
def test_a_flag_given_wins_over_the_recipe(recipe):
    config = parse("--recipe", recipe, "--batch-size", "32", "--schedule", "constant")
    assert (config.batch_size, config.schedule) == (32, "constant")
    assert config.lr == RECIPE_DEFAULTS[recipe]["lr"]


def test_the_config_and_the_command_line_agree_on_every_default():
    assert parse() == TrainConfig()
    assert parse("--recipe", "paper") == TrainConfig(recipe="paper")


def test_help_gives_each_recipes_default(capsys):
    with pytest.raises(SystemExit):
        build_parser("train").parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: skipfold: 16; paper: 64)" in text
    assert "(default: skipfold: cosine; paper: skipinit)" in text


def test_short_run_knobs_parse_and_default_to_the_papers():
    config = parse("--nesterov", "--crop-padding", "2")
    assert (config.nesterov, config.crop_padding) == (True, 2)
    assert (TrainConfig().nesterov, TrainConfig().crop_padding) == (False, 4)


def test_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError, match="nesterov needs a momentum above 0"):
        parse("--nesterov", "--momentum", "0")
