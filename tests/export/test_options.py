"""`skipfold export`'s flags are generated from ExportOptions and PrecisionOptions (declared
once, torch-free): each field one flag, no flags the fields' defaults, bounds the fields'."""

import pytest

from skipfold.common.arguments import ArgumentParser
from skipfold.common.model_flags import flag_name, given
from skipfold.export import cli
from skipfold.export.options import ExportOptions, PrecisionOptions


@pytest.fixture
def parser():
    made = ArgumentParser(prog="skipfold export")
    cli.add_arguments(made)
    return made


@pytest.fixture
def run(tmp_path):
    """What the parser checks of a run folder: its config and weights are there."""
    (tmp_path / "run").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "run" / name).write_text("{}")
    return str(tmp_path / "run")


def test_one_flag_per_field(parser):
    flags = {a.dest: a.option_strings for a in parser._actions}
    for model in (ExportOptions, PrecisionOptions):
        for name in model.model_fields:
            assert flags[name] == [flag_name(model, name)], name


def test_no_flags_are_the_fields_defaults_and_flags_set_them(parser, run, tmp_path):
    args = parser.parse_args([run, "--repo", str(tmp_path / "repo")])
    assert ExportOptions(**given(args, ExportOptions)) == ExportOptions()
    assert PrecisionOptions(**given(args, PrecisionOptions)) == PrecisionOptions()
    args = parser.parse_args(
        [run, "--repo", str(tmp_path / "repo"), "--no-fold", "--precision", "int8",
         "--name", "x", "--max-accuracy-drop", "1", "--calibration-method", "minmax"]
    )  # fmt: skip
    export = ExportOptions(**given(args, ExportOptions))
    assert (export.fold, export.precision, export.name) == (False, "int8", "x")
    precision = PrecisionOptions(**given(args, PrecisionOptions))
    assert (precision.max_accuracy_drop, precision.calibration_method) == (1.0, "minmax")


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--opset", "17", "greater than or equal to 18"),
        ("--max-batch-size", "0", "greater than or equal to 1"),
        ("--name", "a b", "invalid model name"),
        ("--max-accuracy-drop", "-1", "greater than or equal to 0"),
    ],
)
def test_bounds_are_the_fields(parser, run, tmp_path, capsys, flag, value, words):
    with pytest.raises(SystemExit):
        parser.parse_args([run, "--repo", str(tmp_path / "repo"), flag, value])
    assert words in capsys.readouterr().err
