"""`skipfold export --precision fp16` on networks trained with the defaults: the network in
float16 and everything a client sees unchanged, held to the accuracy limit, served with the
labels of the float32 model, and refused when float16 cannot hold the network's values."""

import httpx
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from skipfold import demo
from skipfold.export.folding import fold_exported
from skipfold.export.onnx_graph import ImageClassifier, export_onnx
from skipfold.formats.model_card import ModelCard
from skipfold.models import build_model
from skipfold.training import checkpoint
from skipfold.training.run_folder import RunFolder
from tests.export.conftest import make_run, onnx_top1, randomize, run_test_set, top_predictions
from tests.helpers import Server, skipfold

pytestmark = pytest.mark.e2e


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Every initializer's and every inferred value's element type, by name."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {t.name: t.data_type for t in model.graph.initializer}
    for value in [*inferred.value_info, *inferred.input, *inferred.output]:
        types[value.name] = value.type.tensor_type.elem_type
    return types


def _float16_top1(run, images) -> np.ndarray:
    """The run's network in PyTorch's float16 on the CPU, as the exporter is meant to check its
    float16 arithmetic, computed here on its own."""
    from skipfold.export.onnx_graph import ImageClassifier
    from skipfold.training.checkpoint import load_trained

    network, config = load_trained(RunFolder(run))
    data = config.data
    per_image = data.standardize == "per-image"
    half = ImageClassifier(network, data.mean, data.std, per_image, torch.float16)
    with torch.inference_mode():
        logits = [
            half.eval()(torch.from_numpy(images[i : i + 500]))[0]
            for i in range(0, len(images), 500)
        ]
    return torch.cat(logits).argmax(1).numpy()


def test_fp16_computes_the_network_in_float16_and_keeps_what_clients_see(
    precision_repo, default_run
):
    repo, printed = precision_repo
    for variant in ("bn", "skipinit"):
        model = onnx.load(repo / f"{variant}-fp16" / "1" / "model.onnx")
        types = _tensor_types(model)
        nodes = list(model.graph.node)
        convs = [n for n in nodes if n.op_type == "Conv"]
        assert convs and all(types[n.input[1]] == TensorProto.FLOAT16 for n in convs)
        assert all(types[n.output[0]] == TensorProto.FLOAT16 for n in convs)
        # the client's side: uint8 images in, float32 logits and probabilities out
        assert [types[i.name] for i in model.graph.input] == [TensorProto.UINT8]
        assert [types[o.name] for o in model.graph.output] == [TensorProto.FLOAT] * 2
        # standardization (every node before the one cast to float16) and the softmax compute
        # in float32
        casts = [n for n in nodes if n.op_type == "Cast"]
        to = {n.name: onnx.helper.get_attribute_value(n.attribute[0]) for n in casts}
        (to_half,) = [n for n in casts if to[n.name] == TensorProto.FLOAT16]
        assert nodes.index(to_half) < nodes.index(convs[0])
        for node in nodes[: nodes.index(to_half)]:
            assert types[node.output[0]] in (TensorProto.FLOAT, TensorProto.UINT8), node
        (softmax,) = [n for n in nodes if n.op_type == "Softmax"]
        assert types[softmax.input[0]] == TensorProto.FLOAT

        card = ModelCard.read(repo / f"{variant}-fp16" / "1" / "model.onnx")
        assert card.precision == "fp16" and card.kind.endswith("-fp16")
        assert card.quantization is None
        check = card.accuracy_check
        # the card's figures against the float32 graph and PyTorch's float16 run here
        images, labels = run_test_set(default_run(variant)[0])
        fp32 = onnx_top1(repo / variant / "1" / "model.onnx", images)
        half = _float16_top1(default_run(variant)[0], images)
        assert check.images == len(labels) == 2000
        assert abs(check.reference_accuracy - (fp32 == labels).mean()) <= 1 / 2000
        assert abs(check.accuracy - (half == labels).mean()) <= 2 / 2000, check
        assert abs(check.top1_agreement - (half == fp32).mean()) <= 2 / 2000, check
        assert (fp32 == labels).mean() >= 0.9 and (half == fp32).mean() >= 0.99
        line = printed[variant, "fp16"]
        assert f"fp16: on 2,000 test images {100 * check.reference_accuracy:.2f}% (fp32)" in line
        assert f"drop {check.drop_points:.2f} points" in line
        config = (repo / f"{variant}-fp16" / "config.pbtxt").read_text()
        assert 'key: "precision"' in config and 'string_value: "fp16"' in config


def test_a_served_fp16_model_answers_with_the_fp32_models_labels(precision_repo, tmp_path):
    repo, _ = precision_repo
    samples = demo.write_samples(tmp_path / "samples")
    server = Server(repo)
    try:
        server.wait_ready()
        listed = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()["models"]}
        assert listed["bn-fp16"]["precision"] == "fp16" and listed["bn"]["precision"] == "fp32"
        assert listed["skipinit-fp16"]["accuracy_check"]["images"] == 2000
        for variant in ("bn", "skipinit"):
            answers = {
                name: top_predictions(server.url, name, samples)
                for name in (variant, f"{variant}-fp16")
            }
            labels = {name: [a["label"] for a in got] for name, got in answers.items()}
            assert labels[variant] == labels[f"{variant}-fp16"], labels
            for exact, half in zip(answers[variant], answers[f"{variant}-fp16"], strict=True):
                assert abs(exact["probability"] - half["probability"]) < 0.02, (exact, half)
        log = server.output()
        assert "bn-fp16 version 1 is fp16, made for CUDA" in log, log
    finally:
        server.stop()


@pytest.mark.parametrize("where", ["weights", "activations"])
def test_an_fp16_export_whose_values_overflow_float16_is_refused_and_writes_nothing(
    tmp_path, where
):
    if where == "weights":
        # a BN with a gamma of 1e-7 folds into a shift of about 1e7, past float16's 65,504
        run = make_run(tmp_path / "odd", "bn", depth=10, width=1)
        message = "weights past float16's range (65,504); export fp32 or int8"
    else:
        # every weight within float16's range, the stem 20,000 times too large and the head as
        # much too small (float32 logits stay ordinary): activations of 3e5, which ONNX
        # Runtime's CPU provider (computing float16 chains in float32) would not show
        run = make_run(tmp_path / "loud", "bn", depth=10, width=1, odd_gammas=False)
        model = randomize(build_model("bn", 10, 1), odd_gammas=False)
        with torch.no_grad():
            model.stem.weight.mul_(20_000)
            model.fc.weight.div_(20_000)
        graph = fold_exported(export_onnx(ImageClassifier(model, [0.5] * 3, [0.25] * 3), (32, 32)))
        weights = [onnx.numpy_helper.to_array(t) for t in graph.graph.initializer]
        assert max(float(abs(w).max()) for w in weights if w.dtype.kind == "f") < 65504
        checkpoint.save_model(RunFolder(run), model)
        message = "the fp16 network gives NaN or infinite outputs on "
    repo = tmp_path / "repo"
    result = skipfold("export", run, "--repo", repo, "--precision", "fp16")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert message in line and "export fp32 or int8" in line, line
    assert not repo.exists() or not any(repo.iterdir())
