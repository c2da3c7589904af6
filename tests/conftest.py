"""Shared fixtures: model repositories to serve. The test folders that need torch are not
collected without it (an install with the [serve] extra alone runs the rest)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_models import tiny_repository

TORCH = importlib.util.find_spec("torch") is not None
NEED_TORCH = ["models", "training", "export", "test_demo.py"]
collect_ignore = [] if TORCH else NEED_TORCH


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="the device every served model runs on (SKIPFOLD_DEVICE, for the app in-process and "
        "the servers the tests start); cuda needs onnxruntime-gpu and a GPU, and runs the "
        "tests marked gpu instead of skipping them",
    )
    parser.addoption(
        "--cuda-graphs",
        action="store_true",
        help="with --device cuda: serve through CUDA graphs (SKIPFOLD_CUDA_GRAPHS)",
    )


def pytest_configure(config: pytest.Config) -> None:
    device = config.getoption("--device")
    if device == "cuda":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise pytest.UsageError(
                "--device cuda: this onnxruntime has no CUDA execution provider "
                f"(it has {', '.join(onnxruntime.get_available_providers())})"
            )
        os.environ["SKIPFOLD_DEVICE"] = "cuda"
        if config.getoption("--cuda-graphs"):
            os.environ["SKIPFOLD_CUDA_GRAPHS"] = "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked gpu run only under --device cuda; tests marked cpu_only (they check what the
    CPU provider does) only without it."""
    device = config.getoption("--device")
    for item in items:
        if item.get_closest_marker("gpu") and device != "cuda":
            item.add_marker(pytest.mark.skip(reason="needs a GPU: pytest --device cuda"))
        if item.get_closest_marker("cpu_only") and device != "cpu":
            item.add_marker(pytest.mark.skip(reason="checks the CPU provider"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"served models run on: {config.getoption('--device')}"]
    if TORCH:
        return [*lines, "torch installed: every test folder collected"]
    return [*lines, f"torch not installed: {', '.join(NEED_TORCH)} not collected"]


@pytest.fixture(scope="session")
def serving_device(pytestconfig: pytest.Config) -> str:
    """What the served models run on: cpu, or cuda under pytest --device cuda."""
    return pytestconfig.getoption("--device")


# One thread's float32 matrix rate on the machine the limits below were set on (the AVX-512
# EPYC and the Xeon with AMX: 100-170 GFLOP/s); a CPU at half of it gets twice the time.
REFERENCE_GFLOPS = 100.0


@pytest.fixture(scope="session")
def speed_factor() -> float:
    """How much slower this CPU is than the one the e2e tests' time limits were set on, measured
    once per session (at least 1): limits that depend on the CPU's speed are multiplied by it;
    limits the product sets itself (a read timeout) are not, unless the test must land work
    inside one (a readiness probe inside the shutdown delay)."""
    from tests.helpers import float32_matmul_gflops

    return max(1.0, REFERENCE_GFLOPS / float32_matmul_gflops(1))


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory) -> None:
    """Made data (the `shapes` images) cached for this session only, never in ~/.cache; the
    processes the tests start inherit it."""
    os.environ["SKIPFOLD_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """`skipfold train --variant V --depth 10 --width 1 --epochs 2` with every other option at
    its default, run once per variant per session: a function from the variant to the run
    folder (with the command's result beside it)."""
    from tests.helpers import skipfold

    root = tmp_path_factory.mktemp("default-runs")
    made: dict[str, tuple[Path, object]] = {}

    def run(variant: str) -> tuple[Path, object]:
        if variant not in made:
            folder = root / variant
            result = skipfold(
                "train", "--variant", variant, "--depth", "10", "--width", "1", "--epochs", "2",
                "--out", folder,
            )  # fmt: skip
            made[variant] = folder, result
        return made[variant]

    return run


@pytest.fixture(scope="session")
def openvino_ep(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that imports onnxruntime-openvino (ONNX Runtime with its
    OpenVINO execution provider) in place of onnxruntime: the package, installed into a folder
    of its own, first on PYTHONPATH (the two cannot be installed side by side)."""
    target = tmp_path_factory.mktemp("onnxruntime-openvino")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    result = subprocess.run(
        [*pip, "--no-compile", "--target", str(target), "onnxruntime-openvino>=1.24,<2"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"PYTHONPATH": str(target)}


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    """Small ONNX classifiers built without torch (tests/tiny_models.py): bn (versions 1 and 2),
    bn-unfolded, skipinit, and plain (no model card)."""
    return tiny_repository(tmp_path_factory.mktemp("service") / "repo")


@pytest.fixture(scope="session")
def exported_repo(tmp_path_factory) -> Path:
    """bn (folded, versions 1 and 2) and skipinit: WRN-10-1s trained on `shapes` for one short
    epoch and exported by skipfold export. Needs torch (skipped with the [serve] extra alone)."""
    pytest.importorskip("torch")
    from skipfold.export.exporter import export_run
    from skipfold.training.config import TrainConfig
    from skipfold.training.trainer import train

    root = tmp_path_factory.mktemp("exported")
    repo = root / "repo"
    runs = {}
    for variant in ("bn", "skipinit"):
        config = TrainConfig(
            variant=variant,
            depth=10,
            width=1,
            epochs=1,
            lr=0.05,
            schedule="constant",
            train_limit=512,
            test_limit=128,
            standardize="per-image",
        )
        runs[variant] = root / variant
        train(config, runs[variant])
    export_run(runs["bn"], repo)
    export_run(runs["bn"], repo, fold=True, name="bn")  # version 2 (same weights)
    export_run(runs["skipinit"], repo)
    return repo
