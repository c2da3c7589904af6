"""`skipfold bench` on a tiny configuration: every output written, every figure sane."""

import importlib.util
import json
import math
import os

import pytest

from skipfold.bench import wrk
from tests.helpers import Server, float32_matmul_gflops, skipfold

pytestmark = pytest.mark.e2e
PLOTS = importlib.util.find_spec("matplotlib") is not None


def test_bench_in_process_and_over_http_writes_every_output(repo, tmp_path):
    server = Server(repo)
    server.wait_ready()
    out = tmp_path / "bench"
    try:
        result = skipfold(
            *("bench", "--repo", repo, "--models", "bn,bn-unfolded,skipinit", "--no-torch"),
            *("--engines", "onnxruntime"),
            *("--out", out, "--batch-sizes", "1,2", "--levels", "disabled,all"),
            *("--duration", "0.3", "--threads", "1", "--url", server.url),
            *("--concurrency", "1,2", "--http-model", "skipinit"),
            timeout=300,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert "folded BN / SkipInit" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().startswith("Command: `skipfold bench")
    assert (out / "results.png").is_file() == PLOTS
    if PLOTS:
        assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert "pip install 'skipfold[plot]'" in result.stdout

    rows = results["in_process"]
    assert len(rows) == 2 * 3 * 2  # batch sizes x models x levels
    assert {(r["engine"], r["level"]) for r in rows} == {
        ("onnxruntime", "disabled"),
        ("onnxruntime", "all"),
    }
    for r in rows:
        for key in (
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "round_p25_ms",
            "round_p75_ms",
            "images_per_s",
            "gflops",
        ):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r)
        assert r["p50_ms"] <= r["p99_ms"] and r["calls"] >= 3
    _check_against_the_machine(results, threads=1)
    comparisons = {c["comparison"] for c in results["ratios"]}
    assert {"folded BN / SkipInit", "unfolded BN / folded BN"} <= comparisons
    for c in results["ratios"]:
        assert math.isfinite(c.get("ratio", c.get("difference_ms")))
    _check_overhead(results, out / "results.md")
    http = results["http"]
    assert [h["concurrency"] for h in http] == [1, 2]
    for h in http:
        assert h["errors"] == 0 and h["requests"] > 0
        assert h["requests_per_s"] > 0 and 0 < h["p50_ms"] <= h["p99_ms"]
        assert h["in_process_images_per_s"] > 0
        # one image a request, one call a request: HTTP cannot outrun the model in process
        assert 0 < h["fraction_of_in_process"] < 1.2


def _check_against_the_machine(results: dict, threads: int) -> None:
    """The fp32 roof is this machine's float32 matrix rate, and no float32 row beats it: both
    against NumPy's BLAS measured here, not against the bench's own rows."""
    peak = float32_matmul_gflops(threads)
    assert 0.5 < results["roofs"]["fp32"]["gops"] / peak < 2, (results["roofs"], peak)
    for r in results["in_process"]:
        if r["precision"] == "fp32" and r["gflops"]:
            assert r["gflops"] < 1.5 * peak, (r, peak)
            assert r["roof_fraction"] > 0


def _check_overhead(results: dict, report) -> None:
    """The one-client figures: the Python client's always, wrk's where wrk is installed."""
    comparisons = {c["comparison"] for c in results["ratios"]}
    overhead = results["http_overhead"]
    assert overhead["model"] == "skipinit" and overhead["errors"] == 0 and overhead["rounds"] >= 5
    for key in ("http", "in_process", "health"):
        assert 0 < overhead[f"{key}_p50_ms"] <= overhead[f"{key}_p90_ms"], (key, overhead)
    # POST /predict does everything GET /v2/health/live does, plus decoding and the model
    assert overhead["http_p50_ms"] > overhead["health_p50_ms"]
    assert any("Python client, its own cost included, interleaved" in c for c in comparisons)
    # CI installs wrk (.ci/run fails without it); elsewhere the note must say it is missing
    if wrk.installed() or os.environ.get("CI"):
        measured = overhead["wrk"]
        assert measured["errors"] == 0 and measured["rounds"] >= 3 and measured["requests"] > 30
        for key in ("http", "in_process", "health"):
            assert 0 < measured[f"{key}_p50_ms"] <= measured[f"{key}_p90_ms"], (key, measured)
        assert measured["http_p50_ms"] > measured["health_p50_ms"]
        assert "HTTP p50 - in-process p50 (skipinit, wrk, interleaved)" in comparisons
        assert "Python client's own cost: its POST /predict p50 - wrk's" in comparisons
        assert "| wrk | POST /predict?model=skipinit" in report.read_text()
    else:
        assert "wrk" not in overhead
        assert any(note.startswith("wrk is not installed") for note in results["notes"])


def test_the_pytorch_reference_runs_the_same_networks(exported_repo, tmp_path):
    out = tmp_path / "bench"
    result = skipfold(
        *("bench", "--repo", exported_repo, "--out", out, "--batch-sizes", "1"),
        *("--levels", "all", "--duration", "0.2", "--threads", "1", "--engines", "onnxruntime"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    engines = {(r["model"], r["engine"]) for r in results["in_process"]}
    assert engines == {(m, e) for m in ("bn", "skipinit") for e in ("onnxruntime", "torch-eager")}
    assert any("/ PyTorch eager" in c["comparison"] for c in results["ratios"])


def test_openvino_runs_every_float_format_the_cpu_has_under_its_own_roofs(exported_repo, tmp_path):
    pytest.importorskip("openvino")
    from skipfold.service.openvino_runtime import cpu_precisions

    out = tmp_path / "bench"
    result = skipfold(
        *("bench", "--repo", exported_repo, "--out", out, "--batch-sizes", "1", "--no-torch"),
        *("--levels", "all", "--duration", "0.2", "--threads", "1"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    rows = results["in_process"]
    assert {(r["model"], r["precision"]) for r in rows if r["engine"] == "openvino"} == {
        (m, p) for m in ("bn", "skipinit") for p in cpu_precisions()
    }
    assert set(results["roofs"]) == {"fp32", "int8"} | ({"bf16", "fp16"} & set(cpu_precisions()))
    _check_against_the_machine(results, threads=1)
    comparisons = {c["comparison"] for c in results["ratios"]}
    for precision in cpu_precisions():
        assert f"folded BN / SkipInit (openvino {precision})" in comparisons
        assert f"skipinit openvino {precision} / ONNX Runtime fp32" in comparisons
    assert f"OpenVINO {results['openvino_version']}" in (out / "results.md").read_text()


def test_the_openvino_execution_provider_is_benched_beside_ort(repo, tmp_path, openvino_ep):
    from skipfold.service.runtime import openvino_ep_precision

    out = tmp_path / "bench"
    result = skipfold(
        *("bench", "--repo", repo, "--models", "bn,skipinit", "--out", out, "--no-torch"),
        *("--engines", "onnxruntime,onnxruntime-openvino", "--levels", "all"),
        *("--batch-sizes", "1", "--duration", "0.2", "--threads", "1"),
        env=os.environ | openvino_ep,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    rows = [r for r in results["in_process"] if r["engine"] == "onnxruntime-openvino"]
    native = openvino_ep_precision("auto")
    assert {(r["model"], r["precision"]) for r in rows} == {
        (m, p) for m in ("bn", "skipinit") for p in {"fp32", native}
    }
    assert all(r["p50_ms"] > 0 for r in rows)
    _check_against_the_machine(results, threads=1)
    comparisons = {c["comparison"] for c in results["ratios"]}
    assert f"skipinit onnxruntime-openvino {native} / ONNX Runtime fp32" in comparisons


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engines", "onnxruntime-openvino"], "pip install onnxruntime-openvino"),
        (["--models", "nope"], "not in"),
        (["--http-model", "nope", "--url", "http://127.0.0.1:9"], "--http-model 'nope'"),
        (
            ["--levels", "fast"],
            "input should be 'disabled', 'basic', 'extended' or 'all', got 'fast'",
        ),
        (["--batch-sizes", "0"], "greater than or equal to 1, got '0'"),
        (["--url", "localhost:8000"], "expected http://HOST:PORT"),
        (["--engines", "tensorrt"], "got 'tensorrt'"),
        (["--engines", "openvino", "--device", "cuda"], "runs on the CPU only"),
    ],
)
def test_bad_arguments_are_one_line_before_any_measurement(repo, tmp_path, args, message):
    result = skipfold("bench", "--repo", repo, "--out", tmp_path / "b", *args, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_a_model_that_takes_no_images_is_left_out_or_refused_when_named(repo, tmp_path):
    import shutil

    from tests.service import any_models

    mixed = tmp_path / "repo"
    shutil.copytree(repo / "skipinit", mixed / "skipinit")
    any_models.place(mixed, "nchw", any_models.nchw(), any_models.NCHW_CONFIG)
    named = skipfold("bench", "--repo", mixed, "--models", "nchw", "--out", tmp_path / "b")
    assert named.returncode == 2 and not (tmp_path / "b").exists()
    assert "nchw: not image classifiers" in named.stderr
    from skipfold.bench.options import BenchConfig
    from skipfold.bench.run import repo_models

    assert list(repo_models(BenchConfig(repo=mixed))) == ["skipinit"]
