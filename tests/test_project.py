"""The project as a newcomer meets it: README commands, CI script, dependencies, lint."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The shell commands in the README's first code block, in order."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md must start with a code block of the two commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_run_and_test_commands():
    run, test = readme_commands()[:2]
    for command in (run, test):
        assert command.startswith("python3 -m venv .venv && ")
        assert ".venv/bin/pip install torch==2.13.0 && " in command
    assert "skipfold" in run.split("&&")[-1]
    assert "pytest" in test.split("&&")[-1]


def test_ci_runs_exactly_the_readme_test_command_then_the_container_smoke_test():
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == [readme_commands()[1], "bash .ci/containers"]


def test_the_api_image_installs_the_declared_serving_dependencies_only():
    pyproject = (ROOT / "pyproject.toml").read_text()
    lines = (ROOT / "docker" / "api-requirements.txt").read_text().splitlines()
    requirements = [line for line in lines if line and not line.startswith("#")]
    for requirement in requirements:
        assert f'"{requirement}"' in pyproject, requirement
    names = {re.split(r"[<>=;\[ ]", r)[0].lower() for r in requirements}
    assert {"onnxruntime", "fastapi", "uvicorn", "pillow", "numpy"} <= names
    assert not names & {"torch", "onnx", "onnxscript", "safetensors", "matplotlib"}


def test_dependencies_exclude_torchvision_and_keep_an_existing_torch():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "torchvision" not in pyproject
    assert '"torch>=2.5"' in pyproject


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is a test dependency: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
