"""`skipfold import --precision int8` on a graph written here: calibrated on a folder of real
image files, its accuracy checked against the folders' labels (or the float32 graph's top-1),
the figures on the card recomputed here in ONNX Runtime from the files."""

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


@pytest.mark.parametrize("labelled", [True, False])
def test_int8_is_checked_on_the_calibration_folder(tmp_path, labelled, capsys):
    model = _bn_graph(tmp_path / "net.onnx", [1.0, 2.0, 0.5])
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES))
    folder = _folder(tmp_path / "calibration", labelled)
    repo = tmp_path / "repo"
    common = ["import", str(model), "--repo", str(repo), "--preprocess", "unit"]
    common += ["--classes", str(tmp_path / "classes.txt")]
    assert main([*common, "--precision", "int8", "--calibration-dir", str(folder)]) == 0
    assert main(common) == 0  # the float32 model beside it, as its own name
    int8, fp32 = repo / "net-int8" / "1" / "model.onnx", repo / "net" / "1" / "model.onnx"
    card = ModelCard.read(int8)
    assert card.precision == "int8" and card.quantization.calibration_images == 24
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
    assert check.accuracy == pytest.approx((_top1(int8, images) == labels).mean())
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(int8)).graph.node}


def test_int8_without_a_calibration_folder_is_refused_before_any_work(tmp_path, capsys):
    model = _bn_graph(tmp_path / "net.onnx", [1.0, 2.0, 0.5])
    code = main(["import", str(model), "--repo", str(tmp_path / "repo"), "--precision", "int8"])
    err = capsys.readouterr().err
    assert code == 2 and "needs --calibration-dir" in err and not (tmp_path / "repo").exists()
