"""The demo's preparation: train, export three models, and reuse all of it the second time."""

import onnx
import pytest

from skipfold import demo
from skipfold.demo_sizes import DemoSize
from skipfold.formats.model_repository import versions
from skipfold.training.run_folder import RunFolder

pytestmark = pytest.mark.e2e

TINY = {
    "depth": 10,
    "width": 1,
    "epochs": 1,
    "lr": 0.05,
    "schedule": "constant",
    "standardize": "per-image",
    "train_limit": 256,
    "test_limit": 64,
}


def test_prepare_trains_exports_then_reuses(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "SIZES", (DemoSize("tiny", TINY),))
    repo = demo.prepare(tmp_path, "shapes", None, retrain=False)
    assert {name: versions(repo / name) for name in ("bn", "bn-unfolded", "skipinit")} == {
        "bn": [1],
        "bn-unfolded": [1],
        "skipinit": [1],
    }
    unfolded = onnx.load(str(repo / "bn-unfolded" / "1" / "model.onnx"))
    assert any(n.op_type == "BatchNormalization" for n in unfolded.graph.node)
    capsys.readouterr()

    demo.prepare(tmp_path, "shapes", None, retrain=False)  # the second run: nothing to do
    output = capsys.readouterr().out
    assert output.count("reusing") == 5 and "training" not in output
    assert versions(repo / "bn") == [1]

    demo.prepare(tmp_path, "shapes", None, retrain=True)
    output = capsys.readouterr().out
    assert [line.split()[:2] for line in output.splitlines() if line.startswith("training ")] == [
        ["training", "bn"],
        ["training", "skipinit"],
    ]
    # training is deterministic on the CPU: the same weights again, so no new version
    assert versions(repo / "bn") == [1] and versions(repo / "skipinit") == [1]


def test_sizes_to_the_machine_then_keeps_the_size_it_trained(tmp_path, monkeypatch, capsys):
    """The budget picks the size from the speed measured here; runs already there keep theirs
    whatever the budget; runs of a recipe the demo no longer has are trained again."""
    wide, narrow = DemoSize("wide", TINY | {"width": 2}), DemoSize("narrow", TINY)
    monkeypatch.setattr(demo, "SIZES", (wide, narrow))
    demo.prepare(tmp_path, "shapes", None, retrain=False, budget_s=0.0)  # nothing fits
    output = capsys.readouterr().out
    assert "sizing the trainings to this machine:\n  wide: the training step runs at" in output
    assert "none fits: training the smallest, narrow" in output
    runs = [tmp_path / "runs" / f"shapes-{variant}" for variant in demo.VARIANTS]
    assert [RunFolder(run).read_config().recipe.width for run in runs] == [1, 1]

    demo.prepare(tmp_path, "shapes", None, retrain=False, budget_s=1e9)  # wide would fit now
    output = capsys.readouterr().out
    assert "sizing" not in output and output.count("reusing") == 5

    demo.prepare(tmp_path, "shapes", None, retrain=True, budget_s=1e9)
    output = capsys.readouterr().out
    assert "(within the 1000000000 s budget)\n  training wide\n" in output
    assert [RunFolder(run).read_config().recipe.width for run in runs] == [2, 2]

    monkeypatch.setattr(demo, "SIZES", (narrow,))
    demo.prepare(tmp_path, "shapes", None, retrain=False)
    output = capsys.readouterr().out
    assert output.count("was trained with another recipe: training it again") == 2
    assert [RunFolder(run).read_config().recipe.width for run in runs] == [1, 1]
