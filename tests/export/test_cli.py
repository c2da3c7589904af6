"""`skipfold export` as a user runs it: a real subprocess, real files, ONNX Runtime."""

import hashlib
import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from skipfold.training.checkpoint import load_trained
from skipfold.training.run_folder import RunFolder
from tests.export.conftest import CLASSES, float32_error, float64_logits, make_run
from tests.helpers import skipfold

pytestmark = pytest.mark.e2e


def metadata(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_export_twice_gives_two_versions_with_identical_bytes(bn_run, tmp_path):
    repo = tmp_path / "repo"
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), np.uint8)).save(photo)
    first = skipfold("export", bn_run, "--repo", repo, "--verify-images", photo)
    assert first.returncode == 0, first.stderr
    assert "BatchNormalization" in first.stdout and "verified on 65 images" in first.stdout
    second = skipfold("export", bn_run, "--repo", repo, "--verify-images", photo)
    assert second.returncode == 0, second.stderr
    v1, v2 = repo / "bn-16-2" / "1" / "model.onnx", repo / "bn-16-2" / "2" / "model.onnx"
    assert v1.read_bytes() == v2.read_bytes()

    meta = metadata(v1)
    assert json.loads(meta["classes"]) == CLASSES
    assert (meta["variant"], meta["depth"], meta["width"], meta["folded"]) == (
        "bn",
        "16",
        "2",
        "true",
    )
    assert json.loads(meta["test_accuracy"]) == 0.5
    assert meta["source_run"] == "bn-16-2"
    weights = (bn_run / "model.safetensors").read_bytes()
    assert meta["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert meta["skipfold_version"]
    verification = json.loads(meta["verification"])
    assert verification["images"] == 65
    # the export against the unfolded network in float64, on images of its own
    model, config = load_trained(RunFolder(bn_run))
    images = np.random.default_rng(7).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    logits = ort.InferenceSession(str(v1)).run(["logits"], {"images": images})[0]
    per_image = config.data.standardize == "per-image"
    reference = float64_logits(model, images, config.data.mean, config.data.std, per_image)
    assert float32_error(logits, reference) < 1e-5
    assert "BatchNormalization" not in json.loads(meta["op_counts"])
    assert json.loads(meta["op_counts_unfolded"])["BatchNormalization"] == 13

    # config.pbtxt names the tensors the model has, with their types
    session = ort.InferenceSession(str(v1), providers=["CPUExecutionProvider"])
    config = (repo / "bn-16-2" / "config.pbtxt").read_text()
    names = re.findall(r'^\s*name: "([^"]+)"', config, re.MULTILINE)
    assert names == ["bn-16-2", *(t.name for t in session.get_inputs()), "logits", "probabilities"]
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    assert "TYPE_UINT8" in config and config.count("TYPE_FP32") == 2


def test_no_fold_keeps_every_batchnorm_under_its_own_name(bn_run, tmp_path):
    result = skipfold("export", bn_run, "--repo", tmp_path, "--no-fold")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "bn-16-2-unfolded" / "1" / "model.onnx"
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("BatchNormalization") == 13
    assert metadata(path)["folded"] == "false"


def test_missing_or_corrupt_run_is_a_clear_error_and_writes_nothing(bn_run, tmp_path):
    repo = tmp_path / "repo"
    missing = skipfold("export", tmp_path / "nope", "--repo", repo)
    assert missing.returncode == 2
    assert "not a run folder" in missing.stderr and "Traceback" not in missing.stderr

    (bn_run / "model.safetensors").write_bytes(b"\x00garbage")
    corrupt = skipfold("export", bn_run, "--repo", repo)
    assert corrupt.returncode == 2
    assert "model.safetensors" in corrupt.stderr and "Traceback" not in corrupt.stderr

    low_opset = skipfold("export", bn_run, "--repo", repo, "--opset", "17")
    assert low_opset.returncode == 2 and "opset" in low_opset.stderr
    assert not repo.exists()


def test_a_failed_verification_leaves_nothing_in_the_repository(tmp_path):
    run = make_run(tmp_path / "broken", depth=10, width=1)
    weights = load_file(str(run / "model.safetensors"))
    weights["stages.0.0.conv1.weight"][0, 0, 0, 0] = torch.nan
    save_file(weights, str(run / "model.safetensors"))
    repo = tmp_path / "repo"
    repo.mkdir()
    result = skipfold("export", run, "--repo", repo)
    assert result.returncode == 2
    assert "disagrees" in result.stderr
    assert list(repo.iterdir()) == []


def test_test_flip_is_a_model_of_its_own_with_twice_the_flops(bn_run, tmp_path):
    repo = tmp_path / "repo"
    result = skipfold("export", bn_run, "--repo", repo, "--test-flip")
    assert result.returncode == 0, result.stderr
    assert "the image and its mirror" in result.stdout
    assert "with test-time flips: test accuracy" in result.stdout
    meta = metadata(repo / "bn-16-2-flip" / "1" / "model.onnx")
    assert meta["test_flip"] == "true"
    plain = skipfold("export", bn_run, "--repo", repo)
    assert plain.returncode == 0, plain.stderr
    plain_meta = metadata(repo / "bn-16-2" / "1" / "model.onnx")
    assert plain_meta["test_flip"] == "false"
    assert int(meta["flops_per_image"]) == 2 * int(plain_meta["flops_per_image"])
