"""`skipfold import --precision int8|fp16` on a graph written here: calibrated (int8) and checked
on a folder of real image files, its accuracy against the folders' labels (or the float32
graph's top-1), the figures on the card recomputed here in ONNX Runtime from the files."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from skipfold.cli import main
from skipfold.formats.model_card import ModelCard
from tests.export.test_import import _bn_graph

CLASSES = ["cat", "dog", "emu"]


def _folder(root, labelled: bool):
    rng = np.random.default_rng(1)
    for i in range(24):
        folder = root / (CLASSES[i % 3] if labelled else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _top1(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": images})[0].argmax(1)


@pytest.mark.parametrize(
    ("precision", "labelled"), [("int8", True), ("int8", False), ("fp16", True)]
)
def test_reduced_precision_is_checked_on_the_calibration_folder(
    tmp_path, precision, labelled, capsys
):
    model = _bn_graph(tmp_path / "net.onnx", [1.0, 2.0, 0.5])
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES))
    folder = _folder(tmp_path / "calibration", labelled)
    repo = tmp_path / "repo"
    common = ["import", str(model), "--repo", str(repo), "--preprocess", "unit"]
    common += ["--classes", str(tmp_path / "classes.txt")]
    assert main([*common, "--precision", precision, "--calibration-dir", str(folder)]) == 0
    assert main(common) == 0  # the float32 model beside it, as its own name
    reduced = repo / f"net-{precision}" / "1" / "model.onnx"
    fp32 = repo / "net" / "1" / "model.onnx"
    card = ModelCard.read(reduced)
    assert card.precision == precision
    if precision == "int8":
        assert card.quantization.calibration_images == 24
    files = sorted(folder.rglob("*.png"))
    images = np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((8, 8), Image.BILINEAR)) for f in files]
    )
    labels = (
        np.array([CLASSES.index(f.parent.name) for f in files]) if labelled else _top1(fp32, images)
    )
    check = card.accuracy_check
    assert check.labelled_by == ("labels" if labelled else "float32 top-1")
    assert check.images == 24
    assert check.reference_accuracy == pytest.approx((_top1(fp32, images) == labels).mean())
    assert check.accuracy == pytest.approx((_top1(reduced, images) == labels).mean())
    graph = onnx.load(str(reduced)).graph
    if precision == "int8":
        assert "QuantizeLinear" in {n.op_type for n in graph.node}
    else:  # float16 weights, and the interface as it was: uint8 in, float32 out
        assert {t.data_type for t in graph.initializer if t.dims} >= {onnx.TensorProto.FLOAT16}
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert {o.type.tensor_type.elem_type for o in graph.output} == {onnx.TensorProto.FLOAT}
        fp16_logits = _logits(reduced, images)
        np.testing.assert_allclose(fp16_logits, _logits(fp32, images), rtol=0.01, atol=0.01)


def _logits(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": images})[0]


def test_fp16_refuses_weights_past_its_range_and_writes_nothing(tmp_path, capsys):
    model = _bn_graph(tmp_path / "net.onnx", [1.0, 2.0, 0.5])
    graph = onnx.load(str(model))
    weights = graph.graph.initializer[0]  # the Conv's, 0.5 each: one now past 65,504
    values = onnx.numpy_helper.to_array(weights).copy()
    values[0, 0, 0, 0] = 1e5
    weights.CopyFrom(onnx.numpy_helper.from_array(values, weights.name))
    onnx.save(graph, str(model))
    folder = _folder(tmp_path / "calibration", labelled=False)
    repo = tmp_path / "repo"
    arguments = ["import", str(model), "--repo", str(repo), "--preprocess", "unit"]
    code = main([*arguments, "--precision", "fp16", "--calibration-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and "past float16's range" in err and len(err.strip().splitlines()) == 1
    assert not repo.exists()


def test_int8_without_a_calibration_folder_is_refused_before_any_work(tmp_path, capsys):
    model = _bn_graph(tmp_path / "net.onnx", [1.0, 2.0, 0.5])
    code = main(["import", str(model), "--repo", str(tmp_path / "repo"), "--precision", "int8"])
    err = capsys.readouterr().err
    assert code == 2 and "needs --calibration-dir" in err and not (tmp_path / "repo").exists()
