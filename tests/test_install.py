"""skipfold installed as a user installs it: `pip install '.[serve]'` into a new virtual
environment, from a copy of the checkout. One import name, no torch for serving, and the serving
tests passing there."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.helpers import Server, png, sample_images
from tests.tiny_models import tiny_repository

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


def committable_files() -> list[str]:
    """What a commit of the working tree would hold: tracked files and new ones git does not
    ignore (so a file that .gitignore hides from a clone is missing here too)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The checkout as a fresh clone of it would be."""
    target = tmp_path_factory.mktemp("install") / "skipfold"
    for name in committable_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def new_venv(clone: Path, folder: Path, requirement: str) -> Path:
    """A new virtual environment with `pip install REQUIREMENT` run in the clone. (pip compiles
    the .pyc files, as for a user: with PYTHONDONTWRITEBYTECODE set, as on the CI machine, a
    `--no-compile` install recompiles every module in every process it starts.)"""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, requirement], cwd=clone, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def venv(clone, tmp_path_factory) -> Path:
    """`pip install '.[serve,test]'` (the test tools hold no torch)."""
    return new_venv(clone, tmp_path_factory.mktemp("venv") / "serve", ".[serve,test]")


def run(venv: Path, *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 120),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        **kwargs,
    )


def test_the_distribution_installs_one_top_level_package(venv, tmp_path):
    (site,) = venv.glob("lib/python*/site-packages")
    (dist_info,) = site.glob("skipfold-*.dist-info")
    assert (dist_info / "top_level.txt").read_text().split() == ["skipfold"]
    installed = {line.split(",")[0].split("/")[0] for line in (dist_info / "RECORD").open()}
    assert installed == {"skipfold", dist_info.name, ".."}  # "..": the console script in bin/
    for name in ("models", "training", "export", "service", "bench", "common", "formats"):
        assert (site / "skipfold" / name / "__init__.py").is_file(), name
        assert not (site / name).exists(), name


def test_the_base_install_pulls_no_torch_runtime_or_server(venv, clone):
    """What `pip install .` would install, as pip resolves it (into an empty environment)."""
    report = run(
        venv, "pip", "install", "-q", "--dry-run", "--ignore-installed", "--report", "-", ".",
        cwd=clone, timeout=600,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    names = {p["metadata"]["name"].lower() for p in json.loads(report.stdout)["install"]}
    assert "skipfold" in names and "pydantic" in names
    assert not names & {"torch", "onnxruntime", "fastapi", "matplotlib"}


def test_the_serve_extra_installs_no_torch(venv, tmp_path):
    pip_list = run(venv, "pip", "list", "--format=json", cwd=tmp_path)
    names = {p["name"].lower() for p in json.loads(pip_list.stdout)}
    assert "onnxruntime" in names and "fastapi" in names
    assert not names & {"torch", "matplotlib", "safetensors", "onnxscript"}


def test_a_users_own_models_and_service_do_not_shadow_skipfold(venv, tmp_path):
    (tmp_path / "models.py").write_text("raise RuntimeError('the user models.py was imported')\n")
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "__init__.py").write_text("raise RuntimeError('the user service')\n")
    (tmp_path / "script.py").write_text(
        'import skipfold.cli\nskipfold.cli.main(["train", "--help"])\n'
    )
    script = run(venv, "python", "script.py", cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    assert "usage: skipfold train" in script.stdout
    module = run(venv, "python", "-m", "skipfold", "serve", "--help", cwd=tmp_path)
    assert module.returncode == 0 and "usage: skipfold serve" in module.stdout, module.stderr
    # the same folder with this checkout's own editable install
    editable = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert editable.returncode == 0 and "usage: skipfold train" in editable.stdout, editable.stderr


def test_from_the_checkout_root_the_installed_package_is_imported(venv, clone):
    code = "import skipfold, skipfold.models; print(skipfold.__file__, skipfold.models.__file__)"
    result = run(venv, "python", "-c", code, cwd=clone)
    assert result.returncode == 0, result.stderr
    assert all("site-packages" in path for path in result.stdout.split())


def test_commands_without_their_extra_name_the_pip_install(venv, tmp_path):
    for command, extra in (("train", "train"), ("probe", "train"), ("export", "export")):
        args = {"train": ["--out", "run"], "probe": [], "export": [str(tmp_path), "--repo", "r"]}
        if command == "export":
            (tmp_path / "config.json").write_text("{}")
            (tmp_path / "model.safetensors").write_bytes(b"")
        result = run(venv, "skipfold", command, *args[command], cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        (line,) = result.stderr.splitlines()
        assert line.endswith(f"pip install 'skipfold[{extra}]'"), line
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()


def test_serve_and_bench_run_without_torch(venv, tmp_path):
    repo = tiny_repository(tmp_path / "repo")
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    server = Server(repo, env=env, python=str(venv / "bin" / "python"))
    server.wait_ready()
    try:
        image = sample_images(1, seed=3)
        response = httpx.post(
            f"{server.url}/predict?model=skipinit",
            content=png(image[0]),
            headers={"content-type": "image/png"},
        )
        assert response.status_code == 200, response.text
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        tensor = triton.InferInput("images", [1, 32, 32, 3], "UINT8")
        tensor.set_data_from_numpy(image)
        probabilities = client.infer("skipinit", [tensor]).as_numpy("probabilities")
        top = response.json()["results"][0]["predictions"][0]
        assert top["index"] == int(np.argmax(probabilities[0]))
    finally:
        server.stop()
    out = tmp_path / "bench"
    bench = run(
        venv,
        *("skipfold", "bench", "--repo", str(repo), "--out", str(out), "--batch-sizes", "1"),
        *("--levels", "all", "--duration", "0.2", "--threads", "1"),
        cwd=tmp_path,
    )
    assert bench.returncode == 0, bench.stderr
    assert "no results.png: matplotlib is not installed" in bench.stdout
    results = json.loads((out / "results.json").read_text())
    assert {r["engine"] for r in results["in_process"]} == {"onnxruntime"}
    assert any("PyTorch reference skipped" in note for note in results["notes"])


def test_the_serving_tests_pass_without_torch(venv, clone):
    result = run(
        venv,
        *("python", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "not e2e"),
        *("tests/service", "tests/bench", "tests/formats", "tests/common", "tests/test_cli.py"),
        cwd=clone,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    # only the tests of models trained and exported by torch, which this install cannot make,
    # those of the OpenVINO engine, which [serve] leaves to skipfold[openvino], and the GPU's
    allowed = ("could not import 'torch'", "could not import 'openvino'", "needs a GPU")
    assert all(any(reason in line for reason in allowed) for line in skipped), skipped
    assert " passed" in result.stdout and " failed" not in result.stdout
