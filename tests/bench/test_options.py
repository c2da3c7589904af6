"""`skipfold bench`'s flags are generated from BenchConfig (declared once, torch- and
ONNX-Runtime-free): one flag per field the command line offers, no flags the fields' defaults,
lists read as 'a,b,c' and checked item by item as the field checks them."""

import pytest

from skipfold.bench import cli
from skipfold.bench.options import CLI_FIELDS, BenchConfig
from skipfold.common.arguments import ArgumentParser
from skipfold.common.model_flags import flag_name, given


@pytest.fixture
def parser():
    made = ArgumentParser(prog="skipfold bench")
    cli.add_arguments(made)
    return made


def test_one_flag_per_field(parser):
    flags = {a.dest: a.option_strings for a in parser._actions}
    assert set(CLI_FIELDS) <= set(BenchConfig.model_fields)
    for name in CLI_FIELDS:
        assert flags[name] == [flag_name(BenchConfig, name)], name


def test_no_flags_are_the_defaults_and_lists_read_as_comma_separated(parser, tmp_path):
    base = ["--repo", str(tmp_path), "--out", str(tmp_path / "b")]
    assert BenchConfig(**given(parser.parse_args(base), BenchConfig)) == BenchConfig(repo=tmp_path)
    args = parser.parse_args(
        [*base, "--batch-sizes", "1, 4", "--levels", "all,basic", "--no-torch", "--models", "bn"]
    )
    config = BenchConfig(**given(args, BenchConfig))
    assert (config.batch_sizes, config.levels) == ([1, 4], ["all", "basic"])
    assert (config.torch_reference, config.models) == (False, ["bn"])


def test_the_help_lists_each_lists_choices(parser):
    text = " ".join(parser.format_help().split())
    assert "(of disabled, basic, extended, all)" in text
    assert "(of onnxruntime, openvino, onnxruntime-openvino)" in text
