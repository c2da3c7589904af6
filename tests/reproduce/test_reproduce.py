"""`skipfold reproduce` as a user runs it: real training processes, interrupted and rerun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import skipfold

pytestmark = pytest.mark.e2e


def summaries(out):
    return json.loads((out / "report.json").read_text())["summaries"]


def test_interrupted_and_rerun_it_ends_with_the_same_report(tmp_path):
    straight = tmp_path / "straight"
    # one run at a time: the test interrupts the second run while the first is finished
    one = ("--jobs", "1")
    result = skipfold("reproduce", "regularization", "--preset", "smoke", "--out", straight, *one)
    assert result.returncode == 0, result.stderr
    assert "| batch 16: Regularized SkipInit closes" in result.stdout
    assert (straight / "report.png").stat().st_size > 10_000

    interrupted = tmp_path / "interrupted"
    second = interrupted / "skipinit" / "wrn-10-1_b16_lr0.05_s0" / "state.safetensors"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skipfold",
            "reproduce",
            "regularization",
            "--preset",
            "smoke",
            "--out",
            str(interrupted),
            *one,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not second.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # the second run is between epoch 1 and 2
    assert process.wait(timeout=120) == 130
    bn_weights = interrupted / "bn" / "wrn-10-1_b16_lr0.05_s0" / "model.safetensors"
    before = bn_weights.stat().st_mtime_ns
    assert not (interrupted / "report.json").exists()

    rerun = skipfold("reproduce", "regularization", "--preset", "smoke", "--out", interrupted, *one)
    assert rerun.returncode == 0, rerun.stderr
    assert bn_weights.stat().st_mtime_ns == before  # the finished run was not trained again
    log = (interrupted / "logs" / "skipinit__wrn-10-1_b16_lr0.05_s0.log").read_text()
    assert "epoch   2/2" in log
    assert summaries(interrupted) == summaries(straight)


def test_print_commands_lists_the_grid_and_report_only_reads_what_they_made(tmp_path):
    out = tmp_path / "grid"
    listed = skipfold("reproduce", "depth", "--preset", "smoke", "--out", out, "--print-commands")
    assert listed.returncode == 0, listed.stderr
    commands = listed.stdout.splitlines()
    assert len(commands) == 6 and all(c.startswith("skipfold train ") for c in commands)
    assert not out.exists()  # nothing ran
    first = commands[0].split()[2:]
    assert skipfold("train", *first).returncode == 0  # as a cluster job would run it
    report = skipfold("reproduce", "depth", "--preset", "smoke", "--out", out, "--report-only")
    assert report.returncode == 0, report.stderr
    document = json.loads((out / "report.json").read_text())
    assert [r["status"] for r in document["runs"]].count("trained") == 1
    assert document["finished"] is False
    decided = {v["claim"].split()[0]: v["agrees"] is not None for v in document["verdicts"]}
    assert decided == {"bn": True, "none": False, "skipinit": False, "skipinit's": False}


@pytest.mark.parametrize(
    "experiment", ["covariate-shift", "learning-rate", "initialization", "dropout"]
)
def test_the_batchnorm_papers_experiments_run_and_report_by_one_command(tmp_path, experiment):
    out = tmp_path / experiment
    result = skipfold("reproduce", experiment, "--preset", "smoke", "--out", out)
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "report.json").read_text())
    assert document["finished"] is True
    assert document["verdicts"] and all(v["reading"] != "-" for v in document["verdicts"])
    assert "| the paper's claim | measured | agrees |" in (out / "report.md").read_text()
    assert (out / "report.png").stat().st_size > 10_000
    if experiment in ("covariate-shift", "learning-rate"):
        assert document["curves"] and all(c["steps"] for c in document["curves"])
