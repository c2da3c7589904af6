"""The `skipfold` command: its help, its one-line errors before any work, and its extras."""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from skipfold import cli
from skipfold.cli import SUBCOMMANDS, build_parser
from skipfold.models.spec import ModelSpec
from skipfold.training.config import TrainConfig
from skipfold.training.run_folder import DataSpec, RunConfig, RunFolder

CONSOLE_SCRIPT = Path(sys.executable).parent / "skipfold"


def test_console_script_lists_subcommands():
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_option_shows_its_default_and_choices(name, capsys):
    parser = build_parser(name)
    with pytest.raises(SystemExit) as exit_code:
        parser.parse_args([name, "--help"])
    assert exit_code.value.code == 0
    output = capsys.readouterr().out
    assert f"usage: skipfold {name}" in output
    entries = {}  # each option's entry in --help: its first line and the indented ones below
    for line in output.split("options:", 1)[1].splitlines():
        if re.match(r"^  -", line):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line
        elif line.startswith("   ") and entries:
            entries[flag] += line
    subparser = next(a for a in parser._actions if a.dest == "command").choices[name]
    for action in subparser._actions:
        if action.choices:
            assert "{" + ",".join(action.choices) + "}" in output, action.dest
        if action.option_strings and action.default not in (None, False, True, argparse.SUPPRESS):
            entry = " ".join(entries[action.option_strings[0]].split())
            assert "default" in entry, (action.dest, entry)


def test_the_parser_imports_no_torch_onnx_or_server():
    code = (
        "import sys, skipfold.cli as c\n"
        "for name in c.SUBCOMMANDS: c.build_parser(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'onnx', 'onnxruntime', 'fastapi', 'matplotlib'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


INVALID = [
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--batch-size", "-64"], "--batch-size"),
    (["train", "--lr", "-0.1"], "--lr: input should be greater than 0"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--width", "0"], "--width"),
    (["train", "--depth", "15"], "6N+4"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--momentum", "1.5"], "--momentum"),
    (["train", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--warmup-epochs", "-1"], "--warmup-epochs"),
    (["train", "--dropout", "1"], "--dropout"),
    (["train", "--train-limit", "0"], "--train-limit"),
    (["train", "--variant", "batchnorm"], "invalid choice"),
    (["train", "--variant", "bn", "--alpha-init", "1"], "alpha_init applies to skipinit"),
    (["train", "--dataset", "cifar10"], "data_dir is required for cifar10"),
    (["train", "--out", "{file}"], "is a file"),
    (["train", "--out", "{file}/run"], "is a file"),
    (["train", "--out", "{nonempty}"], "already holds a run"),
    (["train", "--out", "{tmp}/new", "--resume"], "cannot resume"),
    (["train", "--out", "{resumable}", "--resume", "--lr", "0.2"], "(changed: lr)"),
    (["evaluate", "{tmp}"], "not a finished run"),
    (["export", "{tmp}", "--repo", "{tmp}/repo"], "not a finished run"),
    (["export", "{run}", "--repo", "{file}"], "is a file"),
    (["export", "{run}", "--repo", "{tmp}/r", "--opset", "17"], "greater than or equal to 18"),
    (["export", "{run}", "--repo", "{tmp}/r", "--max-batch-size", "0"], "or equal to 1"),
    (["export", "{run}", "--repo", "{tmp}/r", "--name", "../x"], "invalid model name"),
    (["serve", "--repo", "{file}"], "is a file"),
    (["serve", "--repo", "{tmp}/missing"], "does not exist"),
    (["serve", "--repo", "{tmp}", "--port", "70000"], "port"),
    (["serve", "--repo", "{tmp}", "--threads", "0"], "greater than or equal to 1"),
    (["serve", "--repo", "{tmp}", "--max-body-bytes", "0"], "greater than or equal to 1"),
    (["serve", "--repo", "{tmp}", "--models", "bn:latest"], "NAME:VERSION"),
    (["reproduce", "depth", "--out", "{tmp}/none", "--report-only"], "holds no grid"),
    (["reproduce", "depth", "--preset", "paper"], "give --data-dir"),
    (["reproduce", "depth", "--jobs", "0"], "--jobs"),
    (["bench", "--repo", "{file}", "--out", "{tmp}/b"], "is a file"),
    (["bench", "--repo", "{tmp}", "--out", "{file}"], "is a file"),
    (["bench", "--repo", "{tmp}", "--out", "{tmp}/b", "--duration", "0"], "greater than 0"),
    (
        ["bench", "--repo", "{tmp}", "--out", "{tmp}/b", "--concurrency", "0"],
        "greater than or equal to 1",
    ),
    (["probe", "--batch", "1"], "at least 2"),
    (["probe", "--depth", "15"], "6N+4"),
    (["probe", "--variant", "bn", "--alpha-init", "1"], "alpha_init applies to"),
    (["probe", "--json", "{tmp}"], "is a folder"),
    (["demo", "--port", "-1"], "port"),
    (["demo", "--workdir", "{file}"], "is a file"),
    (["demo", "--dataset", "cifar10"], "needs --data-dir"),
]


for case, _ in INVALID:
    if case[0] == "train" and "--out" not in case:
        case += ["--out", "{tmp}/new"]


@pytest.mark.parametrize(("args", "message"), INVALID, ids=[" ".join(a) for a, _ in INVALID])
def test_invalid_arguments_are_one_line_and_exit_2_before_any_work(tmp_path, a_file, args, message):
    run = tmp_path / "run"  # looks finished to the parser: its config is read only later
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"")
    nonempty = tmp_path / "nonempty"
    nonempty.mkdir()
    (nonempty / "config.json").write_text("{}")
    resumable = tmp_path / "resumable"  # a run with a finished epoch, trained with the defaults
    RunFolder(resumable).path.mkdir()
    RunFolder(resumable).write_config(
        RunConfig(
            model=ModelSpec.create("bn", 16, 4),
            data=DataSpec(
                dataset="shapes",
                classes=["a", "b"],
                mean=[0.5] * 3,
                std=[0.2] * 3,
                input_size=(32, 32),
            ),
            recipe=TrainConfig(),
        )
    )
    (resumable / "state.safetensors").write_bytes(b"")
    names = {"file": a_file, "tmp": tmp_path, "run": run, "nonempty": nonempty}
    names["resumable"] = resumable
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-c", _REPORTING_IMPORTS, *(a.format(**names) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith(f"skipfold {args[0]}: error:")
    # checked before any work: no framework, runtime or data loader was even imported
    assert result.stdout.splitlines() == ["heavy modules imported: none"], result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


# `python -m skipfold ARGS`, then which of the modules that real work needs were imported
HEAVY_MODULES = ("torch", "onnx", "onnxruntime", "onnxscript", "fastapi", "uvicorn", "openvino",
                 "matplotlib", "safetensors", "PIL", "skipfold.training.datasets")  # fmt: skip
_REPORTING_IMPORTS = f"""
import sys
from skipfold import cli
sys.argv[0] = "skipfold"
try:
    code = cli.main(sys.argv[1:])
finally:
    heavy = [name for name in {HEAVY_MODULES!r} if name in sys.modules]
    print("heavy modules imported:", ", ".join(heavy) or "none")
sys.exit(code)
"""


def test_a_command_whose_extra_is_missing_names_the_pip_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert cli.main(["train", "--out", str(tmp_path / "run")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "skipfold train: needs torch, which is not installed: pip install 'skipfold[train]'"
    )
    assert not (tmp_path / "run").exists()
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert cli.main(["serve", "--repo", str(tmp_path)]) == 2
    assert "pip install 'skipfold[serve]'" in capsys.readouterr().err
