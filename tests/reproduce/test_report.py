import json

from skipfold.reproduce.experiments import grid
from skipfold.reproduce.readings import read_runs
from skipfold.reproduce.report import build_report, write_report
from skipfold.training.run_folder import RunFolder


def write_run(folder, point, rows):
    """A run folder as `skipfold train` leaves it, written without training."""
    from skipfold.models.spec import ModelSpec
    from skipfold.training.run_folder import DataSpec, RunConfig

    c = point.config
    spec = ModelSpec.create(c.variant, c.depth, c.width, **c.model_options((32, 32)))
    data = DataSpec(
        dataset="shapes",
        classes=list("abcdefghij"),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        input_size=(32, 32),
    )
    run = RunFolder(folder)
    run.path.mkdir(parents=True)
    run.write_config(RunConfig(model=spec, data=data, recipe=c))
    run.write_metrics(rows)
    if rows and "test_acc" in rows[-1]:
        (run / "model.safetensors").write_bytes(b"weights")


def test_runs_are_found_by_their_config_wherever_they_are_under_out(tmp_path):
    points = grid("depth", "smoke")
    bn, skipinit, none = points[0], points[1], points[4]
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.4, "test_acc": 0.85}
    write_run(tmp_path / "from-the-cluster" / "job-17", bn, [row, row | {"epoch": 2}])
    write_run(tmp_path / skipinit.name, skipinit, [{"epoch": 1, "train_loss": 2.0}])  # partial
    write_run(tmp_path / none.name, none, [{"epoch": 1, "step": 3, "diverged": True}])
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "config.json").write_text("{not json")  # ignored, not fatal
    readings = {r.arm: r for r in read_runs(points, tmp_path, "depth")}
    assert readings["bn"].status == "trained" and readings["bn"].test_acc == 0.85
    assert readings["skipinit"].status == "missing"
    assert readings["none"].status == "diverged"

    report = build_report("depth", "smoke", points, tmp_path, "skipfold reproduce depth")
    written = write_report(report, tmp_path)
    assert [p.name for p in written] == ["report.md", "report.json", "report.png"]
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["finished"] is False and len(document["runs"]) == len(points)
    assert "| 10 | bn | 0.05 | 85.00% |" in (tmp_path / "report.md").read_text()
