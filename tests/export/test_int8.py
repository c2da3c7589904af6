"""`skipfold export --precision int8` on networks trained with the defaults: calibrated,
held to the accuracy limit, and served with the labels of the float32 model."""

import json

import httpx
import onnx
import pytest

from skipfold import demo
from skipfold.formats.model_card import ModelCard
from tests.export.conftest import onnx_top1, run_test_set, top_predictions
from tests.helpers import Server, float32_matmul_gflops, skipfold

pytestmark = pytest.mark.e2e


def test_int8_keeps_the_accuracy_and_says_so_in_the_card_and_the_config(
    precision_repo, default_run
):
    repo, printed = precision_repo
    for variant in ("bn", "skipinit"):
        card = ModelCard.read(repo / f"{variant}-int8" / "1" / "model.onnx")
        assert card.precision == "int8" and card.kind.endswith("-int8")
        assert card.quantization.calibration_images == 256
        check = card.accuracy_check
        # the card's figures against the graphs run here on the run's own test images
        images, labels = run_test_set(default_run(variant)[0])
        fp32 = onnx_top1(repo / variant / "1" / "model.onnx", images)
        int8 = onnx_top1(repo / f"{variant}-int8" / "1" / "model.onnx", images)
        assert check.images == len(labels) == 2000
        assert abs(check.reference_accuracy - (fp32 == labels).mean()) <= 1 / 2000
        assert abs(check.accuracy - (int8 == labels).mean()) <= 2 / 2000, check
        assert abs(check.top1_agreement - (int8 == fp32).mean()) <= 2 / 2000, check
        assert (fp32 == labels).mean() >= 0.9 and (int8 == fp32).mean() >= 0.95
        assert f"drop {check.drop_points:.2f} points" in printed[variant, "int8"]
        ops = {node.op_type for node in onnx.load(repo / f"{variant}-int8/1/model.onnx").graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
        config = (repo / f"{variant}-int8" / "config.pbtxt").read_text()
        assert 'key: "precision"' in config and 'string_value: "int8"' in config
        assert "precision" not in (repo / variant / "config.pbtxt").read_text()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_a_served_int8_model_answers_with_the_fp32_models_labels(precision_repo, tmp_path, engine):
    if engine == "openvino":
        pytest.importorskip("openvino")
    repo, _ = precision_repo
    samples = demo.write_samples(tmp_path / "samples")
    server = Server(repo, "--engine", engine)
    try:
        server.wait_ready()
        listed = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()["models"]}
        assert listed["bn-int8"]["precision"] == "int8" and listed["bn"]["precision"] == "fp32"
        assert listed["bn-int8"]["accuracy_check"]["images"] == 2000
        assert {m["engine"] for m in listed.values()} == {engine}
        for variant in ("bn", "skipinit"):
            labels = {}
            for name in (variant, f"{variant}-int8"):
                labels[name] = [p["label"] for p in top_predictions(server.url, name, samples)]
            assert labels[variant] == labels[f"{variant}-int8"], labels
            # the networks learned the shapes: most samples get their own class
            right = sum(
                label == path.stem for label, path in zip(labels[variant], samples, strict=True)
            )
            assert right >= 8, labels
    finally:
        server.stop()


def test_an_int8_export_past_the_accuracy_limit_is_refused_and_writes_nothing(
    default_run, tmp_path
):
    run, _ = default_run("bn")
    repo = tmp_path / "repo"
    # one calibration image: activation ranges too narrow, so the int8 graph clips and loses
    # some accuracy (0.30 points here), which a limit of 0 refuses
    result = skipfold(
        "export", run, "--repo", repo, "--precision", "int8", "--calibration-images", "1",
        "--max-accuracy-drop", "0",
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "accuracy drop" in line and "exceeds --max-accuracy-drop 0; nothing written" in line
    drop = float(line.split("accuracy drop ")[1].split(" points")[0])
    assert drop > 0
    assert not repo.exists() or not any(repo.iterdir())


def test_the_bench_gives_int8_its_own_roof_and_no_pytorch_row(precision_repo, tmp_path):
    repo, _ = precision_repo
    out = tmp_path / "bench"
    result = skipfold(
        *("bench", "--repo", repo, "--out", out, "--batch-sizes", "1"),
        *("--models", "bn,bn-int8,skipinit,skipinit-int8"),
        *("--levels", "all", "--duration", "0.3", "--threads", "1", "--engines", "onnxruntime"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["roofs"]) == {"fp32", "int8"}
    assert results["roofs"]["int8"]["gops"] > results["roofs"]["fp32"]["gops"]
    rows = results["in_process"]
    assert {(r["model"], r["engine"]) for r in rows if r["engine"] != "onnxruntime"} == {
        ("bn", "torch-eager"),
        ("skipinit", "torch-eager"),
    }
    peak = float32_matmul_gflops(1)  # this machine's float32 matrix rate, by NumPy's BLAS
    assert 0.5 < results["roofs"]["fp32"]["gops"] / peak < 2, (results["roofs"], peak)
    assert all(r["gflops"] < 1.5 * peak for r in rows if r["precision"] == "fp32"), rows
    assert {r["precision"] for r in rows} == {"fp32", "int8"}
    report = (out / "results.md").read_text()
    assert "Roof, int8:" in report
    comparisons = {c["comparison"] for c in results["ratios"]}
    assert {"bn-folded int8 / fp32", "skipinit int8 / fp32", "folded BN / SkipInit (int8)"} <= (
        comparisons
    )


def test_too_many_calibration_images_is_one_line_before_any_export_work(default_run, tmp_path):
    run, _ = default_run("bn")
    repo = tmp_path / "repo"
    result = skipfold(
        "export", run, "--repo", repo, "--precision", "int8", "--calibration-images", "20000"
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "20000 calibration images asked for; the run has 10000" in line, line
    assert not repo.exists()
