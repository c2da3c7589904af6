import os
import threading

from skipfold.reproduce.experiments import grid
from skipfold.reproduce.grid import Outcome, _environment, default_jobs, run_grid, status
from skipfold.training.run_folder import RunFolder


def test_each_job_gets_its_own_gpu_or_a_share_of_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert [_environment(slot, 4, gpus=2)["CUDA_VISIBLE_DEVICES"] for slot in range(4)] == [
        "0",
        "1",
        "0",
        "1",
    ]
    assert _environment(0, 4, gpus=0)["OMP_NUM_THREADS"] == "4"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert "OMP_NUM_THREADS" not in _environment(0, 1, gpus=0)  # one job: torch's own default


def test_by_default_one_job_per_gpu_else_one_per_core(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert default_jobs(gpus=4) == 4
    assert default_jobs(gpus=0) == 6
    assert _environment(5, default_jobs(0), gpus=0)["OMP_NUM_THREADS"] == "1"


def test_jobs_run_side_by_side_on_distinct_slots(tmp_path):
    points = grid("depth", "smoke")
    running, peak, begun = set(), [0], [0]
    lock = threading.Lock()
    three = threading.Barrier(3, timeout=30)  # the first three runs meet: all running at once

    def runner(point, out, env):
        with lock:
            running.add(point.name)
            peak[0] = max(peak[0], len(running))
            begun[0] += 1
            first_three = begun[0] <= 3
        if first_three:  # with fewer slots the third never starts: the barrier breaks
            three.wait()
        with lock:
            running.discard(point.name)
        return Outcome(point, "trained", out / "log")

    outcomes = run_grid(points, tmp_path, jobs=3, gpus=0, runner=runner)
    assert sorted(o.point.name for o in outcomes) == sorted(p.name for p in points)
    assert peak[0] == 3


def test_a_folder_is_new_partial_trained_or_diverged(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert status(folder, 2) == "new"
    folder.path.mkdir()
    (folder / "state.safetensors").write_bytes(b"x")
    folder.write_metrics([{"epoch": 1, "test_acc": 0.5}])
    assert status(folder, 2) == "partial"
    (folder / "model.safetensors").write_bytes(b"x")
    folder.write_metrics([{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.6}])
    assert status(folder, 2) == "trained"
    folder.write_metrics([{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "step": 4, "diverged": True}])
    assert status(folder, 2) == "diverged"


def test_a_folder_holding_a_run_with_other_settings_is_left_alone(tmp_path):
    from skipfold.reproduce.grid import run_point
    from tests.reproduce.test_report import write_run

    point = grid("depth", "smoke")[0]
    other = grid("depth", "cpu")[0]
    write_run(tmp_path / point.name, other, [{"epoch": 1, "test_acc": 0.9, "train_loss": 0.1}])
    before = (tmp_path / point.name / "config.json").read_text()
    outcome = run_point(point, tmp_path, {})
    assert (
        outcome.status == "failed" and "holds a run with other settings" in outcome.log.read_text()
    )
    assert (tmp_path / point.name / "config.json").read_text() == before
