"""The project as a newcomer meets it: README commands, CI script, dependencies, lint."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
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
    # wrk, chromium and kubectl: system tools that the bench, browser and deploy tests use
    setup = ("#", "set ", "cd ", "missing=() && ", "packages=() && ", "if ((${#packages[@]}))")
    commands = [line for line in script if line and not line.startswith(setup)]
    # the README's command, and a failure of it fails CI (set -e spares && lists)
    assert commands == [readme_commands()[1] + " || exit 1", "bash .ci/containers"]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=;\[ ]", r)[0].lower() for r in requirements}


def test_each_role_installs_what_it_needs_and_serving_no_torch():
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    heavy = {"torch", "onnx", "onnxscript", "safetensors", "matplotlib", "fastapi", "onnxruntime"}
    assert not names(project["dependencies"]) & heavy  # the base: the command, the formats
    assert {"onnxruntime", "fastapi", "uvicorn", "aiohttp"} <= names(extras["serve"])
    assert not names(extras["serve"]) & {"torch", "onnx", "onnxscript", "matplotlib"}
    assert "torch" not in names(extras["test"])  # so that [serve,test] tests serving alone
    assert "torch>=2.5" in extras["train"]  # a lower bound only: an existing CUDA build is kept
    assert "torchvision" not in (ROOT / "pyproject.toml").read_text()


def test_the_api_image_installs_the_serve_extra_and_no_second_list():
    dockerfile = (ROOT / "Dockerfile").read_text()
    api_build = dockerfile.split("AS api-build", 1)[1].split("FROM ", 1)[0]
    assert '"/src[serve]"' in api_build
    assert "requirements" not in dockerfile
    assert not list(ROOT.glob("**/*requirements*.txt"))


PACKAGE_FOLDERS = ("common", "formats", "models", "training", "export", "service", "bench")
PACKAGE_FOLDERS += ("reproduce",)


def test_one_rule_places_every_package():
    """Each skipfold.X is the folder X/ at the root (its subpackages below it); src/skipfold/
    holds only the root package; nothing at the root is named skipfold."""
    setuptools = pyproject()["tool"]["setuptools"]
    assert not (ROOT / "skipfold").exists()  # it would shadow the installed package
    placed = {p: setuptools["package-dir"].get(p) for p in setuptools["packages"]}
    assert placed.pop("skipfold") == "src/skipfold"
    for package, folder in placed.items():
        assert folder == package.removeprefix("skipfold.").replace(".", "/"), package
        assert (ROOT / folder / "__init__.py").is_file(), folder
    on_disk = {
        str(path.parent.relative_to(ROOT))
        for path in ROOT.glob("*/**/__init__.py")
        if path.parts[len(ROOT.parts)] not in ("tests", "docs", "src") and ".venv" not in path.parts
    }
    assert on_disk == set(placed.values())  # every package folder is installed, under skipfold
    assert {p.split(".")[1] for p in placed} == set(PACKAGE_FOLDERS)
    assert [p.name for p in (ROOT / "src" / "skipfold").iterdir() if p.is_dir()] in (
        [],
        ["__pycache__"],
    )


def imported_modules(tree: ast.AST) -> set[str]:
    """skipfold.X for every import of skipfold.X.… (or of X from skipfold) in a module."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "skipfold":  # from skipfold import cli, __version__
                found |= {f"skipfold.{a.name}" for a in node.names if a.name != "__version__"}
            else:
                found.add(".".join(node.module.split(".")[:2]))
        elif isinstance(node, ast.Import):
            found |= {".".join(a.name.split(".")[:2]) for a in node.names}
    return found


def test_the_house_has_one_direction():
    """Nothing imports upward: the bottom layers know nothing of the stages, serving nothing of
    training, and only the CLI and the demo sit on top."""
    layers = {  # package -> what it may import from skipfold
        "skipfold.common": set(),
        "skipfold.formats": {"skipfold.common"},
        "skipfold.models": {"skipfold.common"},
        "skipfold.training": {"skipfold.common", "skipfold.models"},
        "skipfold.export": {
            "skipfold.common", "skipfold.formats", "skipfold.models", "skipfold.training",
        },
        "skipfold.service": {"skipfold.common", "skipfold.formats"},
        "skipfold.bench": {
            "skipfold.common", "skipfold.formats", "skipfold.service",
            "skipfold.models", "skipfold.export",  # the optional PyTorch reference
        },
        "skipfold.reproduce": {"skipfold.common", "skipfold.training"},
    }  # fmt: skip
    for folder in PACKAGE_FOLDERS:
        package = f"skipfold.{folder}"
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            own = {m for m in imported_modules(tree) if m.startswith("skipfold.")} - {package}
            assert own <= layers[package], (path.relative_to(ROOT), own - layers[package])


def hand_written_python() -> list[Path]:
    """Every Python file of the checkout but protoc's generated ones and environments."""
    return [
        p
        for p in ROOT.rglob("*.py")
        if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))
        and not {".venv", "build", ".git"} & set(p.relative_to(ROOT).parts)
        and not p.relative_to(ROOT).parts[0].startswith((".venv", "demo", "runs", "results"))
    ]


def test_small_files_and_short_functions():
    long_files = [
        str(p.relative_to(ROOT))
        for p in hand_written_python()
        if len(p.read_text().splitlines()) > 300
    ]
    assert long_files == []
    sources = [p for folder in ("src", *PACKAGE_FOLDERS) for p in (ROOT / folder).rglob("*.py")]
    for path in sources:
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                assert lines <= 65, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}"


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is a test dependency: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


CLOCKS = {"perf_counter", "monotonic", "time", "sleep", "perf_counter_ns", "monotonic_ns"}
# Unit tests that may still read the clock or sleep, and why: none. (e2e and hostile tests may:
# real servers and processes, with budgets the product sets or that scale with the machine.)
CLOCK_ALLOWED: dict[str, str] = {}


def _marked(decorators: list[ast.expr], marks: set[str]) -> bool:
    return any(
        marks & {n.attr for n in ast.walk(d) if isinstance(n, ast.Attribute)} for d in decorators
    )


def test_unit_tests_neither_read_the_clock_nor_sleep():
    """Timing belongs to benchmarks: a unit test that times the code or orders events with sleeps
    fails on a CPU ten times slower (or passes by luck on a fast one)."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_marks = [
            n.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
        ]
        if _marked(module_marks, {"e2e", "hostile"}):
            continue
        for node in tree.body:
            if not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef
            ) or not node.name.startswith("test_"):
                continue
            if _marked(node.decorator_list, {"e2e", "hostile"}):
                continue
            for call in ast.walk(node):
                name = getattr(getattr(call, "func", None), "attr", "")
                owner = getattr(getattr(getattr(call, "func", None), "value", None), "id", "")
                if isinstance(call, ast.Call) and owner in ("time", "asyncio") and name in CLOCKS:
                    where = f"{path.relative_to(ROOT)}::{node.name}"
                    if where not in CLOCK_ALLOWED:
                        offenders.append(f"{where}: {owner}.{name}")
    assert not offenders, offenders


def test_grpc_imports_no_fastapi_module():
    """The gRPC transport shares the protocol's logic (service/open_inference.py), not the HTTP
    routes: importing it loads neither FastAPI nor Starlette."""
    code = (
        "import sys, skipfold.service.grpc_server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
