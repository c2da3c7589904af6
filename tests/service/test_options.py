"""`skipfold serve`'s settings are declared once (service/options.py): the flags, their help,
the environment variables and the docs' table are generated from the fields, and each of them
reads back as the field's own value."""

import re
from pathlib import Path

import pytest

from skipfold.common.arguments import ArgumentParser
from skipfold.common.model_flags import flag_name, given, settings_table, shown_default
from skipfold.service import cli
from skipfold.service.options import ENV_PREFIX, ServeOptions
from skipfold.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ServeOptions.model_fields


@pytest.fixture
def parser():
    made = ArgumentParser(prog="skipfold serve")
    cli.add_arguments(made)
    return made


def _text(name: str, value: object, folder: Path) -> str:
    """The command-line and environment form of a field's value."""
    if isinstance(value, Path):
        return str(folder)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _expected(value: object, folder: Path) -> object:
    return folder if isinstance(value, Path) else value


def test_every_field_has_one_flag_whose_value_reads_back_as_the_field(parser, tmp_path):
    flags = {action.dest: action for action in parser._actions if action.dest in FIELDS}
    assert set(flags) == set(FIELDS)
    assert len({flag_name(ServeOptions, name) for name in FIELDS}) == len(FIELDS)
    defaults = ServeOptions()
    for name in FIELDS:
        assert flags[name].option_strings == [flag_name(ServeOptions, name)]
        assert FIELDS[name].description in flags[name].help.replace("%%", "%")
        value = getattr(defaults, name)
        if value is None or name == "api_key":
            continue
        argv = [flags[name].option_strings[0]]
        if not isinstance(value, bool):
            argv.append(_text(name, value, tmp_path))
        parsed = given(parser.parse_args(argv), ServeOptions)
        assert parsed == {name: True if isinstance(value, bool) else _expected(value, tmp_path)}
        if not isinstance(value, bool):  # a switch given turns on what its default leaves off
            assert getattr(Settings(**parsed), name) == _expected(value, tmp_path), name


def test_every_field_reads_its_environment_variable_and_flags_win(parser, monkeypatch, tmp_path):
    for name in ("SKIPFOLD_DEVICE", "SKIPFOLD_CUDA_GRAPHS"):  # set by pytest --device cuda
        monkeypatch.delenv(name, raising=False)
    defaults = ServeOptions()
    for name in FIELDS:
        value = getattr(defaults, name)
        if value is None or isinstance(value, bool) or name == "api_key":
            continue
        monkeypatch.setenv(f"{ENV_PREFIX}{name.upper()}", _text(name, value, tmp_path))
    monkeypatch.setenv("SKIPFOLD_CUDA_GRAPHS", "false")
    monkeypatch.setenv("SKIPFOLD_API_KEY", "from-the-environment")
    monkeypatch.setenv("SKIPFOLD_PORT", "9123")
    settings = Settings()
    assert settings.port == 9123 and settings.repository == tmp_path
    assert settings.api_key.get_secret_value() == "from-the-environment"
    flagged = Settings(
        **given(parser.parse_args(["--port", "9124", "--api-key", "k"]), ServeOptions)
    )
    assert flagged.port == 9124 and flagged.api_key.get_secret_value() == "k"


def test_help_shows_each_default_once_as_the_field_holds_it(parser):
    text = re.sub(r"\s+", "", parser.format_help())  # argparse wraps lines, even at hyphens
    for name in FIELDS:
        shown = shown_default(ServeOptions, name)
        if shown is not None:
            assert re.sub(r"\s+", "", f"(default: {shown})") in text, name
    assert "SKIPFOLD_" in text  # the epilog names the environment


def test_the_docs_table_is_the_generated_one():
    page = (ROOT / "docs" / "serve.md").read_text()
    documented = page.split("<!-- settings table: begin -->\n", 1)[1].split("<!--", 1)[0]
    assert documented == settings_table(ServeOptions, ENV_PREFIX), (
        "docs/serve.md's settings table is stale: python scripts/settings_table.py"
    )


def test_flags_are_checked_by_the_fields_bounds(parser, capsys):
    for argv, words in (
        (["--port", "70000"], "less than or equal to 65535"),
        (["--workers", "0"], "greater than or equal to 1"),
        (["--engine-min-agreement", "1.5"], "less than or equal to 1"),
        (["--device", "tpu"], "invalid choice"),
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert words in capsys.readouterr().err, argv
