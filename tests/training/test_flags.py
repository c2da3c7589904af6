"""`skipfold train`'s flags are generated from TrainConfig: one flag per field, its help the
field's description, and no flags at all parse to TrainConfig's own defaults."""

import re

from skipfold.common.arguments import ArgumentParser
from skipfold.common.model_flags import flag_name
from skipfold.training import cli
from skipfold.training.config import RECIPE_DEFAULTS, TrainConfig


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="skipfold train")
    cli.add_arguments(parser)
    return parser


def test_one_flag_per_field_with_the_fields_description():
    actions = {a.dest: a for a in _parser()._actions}
    for name, info in TrainConfig.model_fields.items():
        assert actions[name].option_strings == [flag_name(TrainConfig, name)]
        assert info.description and info.description in actions[name].help.replace("%%", "%")


def test_no_flags_give_the_configs_defaults_and_each_recipe_its_own(tmp_path):
    args = _parser().parse_args(["--out", str(tmp_path / "run")])
    assert cli.config_from_args(args) == TrainConfig()
    args = _parser().parse_args(["--out", str(tmp_path / "run"), "--recipe", "paper"])
    config = cli.config_from_args(args)
    assert {k: getattr(config, k) for k in RECIPE_DEFAULTS["paper"]} == RECIPE_DEFAULTS["paper"]


def test_help_gives_each_recipe_fields_default_under_every_recipe():
    text = re.sub(r"\s+", "", _parser().format_help())
    for name in RECIPE_DEFAULTS["skipfold"]:
        shown = "; ".join(f"{r}: {values[name]}" for r, values in RECIPE_DEFAULTS.items())
        assert re.sub(r"\s+", "", f"(default: {shown})") in text, name
