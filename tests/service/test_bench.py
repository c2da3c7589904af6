"""`skipfold bench` on a tiny configuration: every output written, every figure sane."""

import json
import math
import subprocess
import sys

from tests.service.conftest import Server


def test_bench_writes_all_outputs_with_positive_finite_figures(repo, tmp_path):
    server = Server(repo)
    server.wait_ready()
    try:
        out = tmp_path / "bench"
        result = subprocess.run(
            [
                *(sys.executable, "-m", "skipfold", "bench", "--repo", str(repo)),
                *("--out", str(out), "--batch-sizes", "1,2", "--levels", "disabled,all"),
                *("--duration", "0.3", "--threads", "1", "--url", server.url),
                *("--concurrency", "1,2", "--http-model", "skipinit"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert "folded BN / SkipInit" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().startswith("Command: `skipfold bench")
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"

    rows = results["in_process"]
    # 2 models x 2 levels on ONNX Runtime + 2 models in PyTorch eager, at 2 batch sizes
    assert len(rows) == 2 * (2 * 2 + 2)
    assert {(r["engine"], r["level"]) for r in rows} == {
        ("onnxruntime", "disabled"),
        ("onnxruntime", "all"),
        ("torch-eager", "-"),
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
    assert results["roof_gflops"] > 0
    comparisons = {c["comparison"] for c in results["ratios"]}
    assert "folded BN / SkipInit" in comparisons
    for c in results["ratios"]:
        assert math.isfinite(c.get("ratio", c.get("difference_ms")))
    overhead = results["http_overhead"]
    assert overhead["model"] == "skipinit" and overhead["errors"] == 0 and overhead["rounds"] >= 5
    for key in ("http", "in_process", "health"):
        assert 0 < overhead[f"{key}_p50_ms"] <= overhead[f"{key}_p90_ms"], (key, overhead)
    # POST /predict does everything GET /v2/health/live does, plus decoding and the model
    assert overhead["http_p50_ms"] > overhead["health_p50_ms"]
    assert any("one client, interleaved" in c for c in comparisons)
    http = results["http"]
    assert [h["concurrency"] for h in http] == [1, 2]
    for h in http:
        assert h["errors"] == 0 and h["requests"] > 0
        assert h["requests_per_s"] > 0 and 0 < h["p50_ms"] <= h["p99_ms"]
        assert h["in_process_images_per_s"] > 0
        assert math.isclose(
            h["fraction_of_in_process"], h["requests_per_s"] / h["in_process_images_per_s"]
        )
