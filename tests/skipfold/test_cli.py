"""The `skipfold` command as a user runs it: a real subprocess, real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from skipfold.cli import SUBCOMMANDS

CONSOLE_SCRIPT = Path(sys.executable).parent / "skipfold"


def skipfold(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skipfold", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def test_console_script_lists_subcommands():
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_has_help(name):
    result = skipfold(name, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: skipfold {name}" in result.stdout


def test_parser_imports_no_torch_until_a_command_needs_it():
    code = "import sys, skipfold.cli as c; c.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--depth", "15"], "depth must be 6N+4"),
        (["--width", "0"], "width must be an integer >= 1"),
        (["--batch", "1"], "batch must be at least 2"),
        (["--variant", "bn", "--alpha-init", "1"], "alpha_init applies to skipinit"),
    ],
)
def test_invalid_arguments_give_one_line_not_a_traceback(args, message):
    result = skipfold("probe", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith("skipfold probe: error:")


def test_unknown_variant_names_the_choices():
    result = skipfold("probe", "--variant", "batchnorm")
    assert result.returncode == 2
    assert "bn, skipinit, skipinit-reg, none" in result.stderr.replace("'", "")


def test_probe_writes_table_json_and_plot(tmp_path):
    json_path, png_path = tmp_path / "out" / "probe.json", tmp_path / "out" / "probe.png"
    args = ["--variant", "none", "--depth", "16", "--batch", "8"]
    result = skipfold("probe", *args, "--json", str(json_path), "--plot", str(png_path))
    assert result.returncode == 0, result.stderr
    assert "WRN-16-1 none" in result.stdout and "branch_var" in result.stdout
    document = json.loads(json_path.read_text())
    assert document["variant"] == "none" and document["depth"] == 16
    assert len(document["blocks"]) == 6
    assert all(b["out_var"] > b["skip_var"] > 0 for b in document["blocks"])
    with Image.open(png_path) as image:
        assert image.format == "PNG" and image.width > 600
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["probe.json", "probe.png"]


def test_probe_compare_covers_every_variant(tmp_path):
    json_path = tmp_path / "compare.json"
    result = skipfold("probe", "--compare", "--depth", "10", "--batch", "4", "--json", json_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(json_path.read_text())
    variants = [r["variant"] for r in document["variants"]]
    assert variants == ["bn", "skipinit", "skipinit-reg", "none"]
    for variant in variants:
        assert variant in result.stdout
