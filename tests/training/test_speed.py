"""The demo's speed probe against the trainer's own images/s on the same config."""

import pytest

from skipfold.training.config import TrainConfig
from skipfold.training.speed import training_speed
from skipfold.training.trainer import train

pytestmark = pytest.mark.e2e


def test_the_probe_reads_what_the_training_runs_at(tmp_path):
    config = TrainConfig(
        variant="bn", depth=10, width=1, epochs=1, train_limit=1_024, test_limit=64, lr=0.02
    )
    probed = training_speed(config)
    trained = train(config, tmp_path / "run")["images_per_s"]
    # both time the same step on the same machine; the trainer adds augmentation and a
    # read-back per step, so it may run somewhat slower, never several times faster
    assert 0.5 < trained / probed < 1.5, (trained, probed)
