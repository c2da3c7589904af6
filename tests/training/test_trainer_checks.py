"""train() in-process: what it checks before writing, and what an interruption leaves."""

import pytest

from skipfold.training import trainer
from skipfold.training.config import TrainConfig
from skipfold.training.run_folder import RunFolder

TINY = {"depth": 10, "width": 1, "train_limit": 128, "test_limit": 32, "batch_size": 64}


def test_a_run_that_cannot_start_writes_nothing(tmp_path):
    config = TrainConfig(**TINY | {"train_limit": 10})
    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        trainer.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_interruption_in_the_first_epoch_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_epoch", interrupted)
    (tmp_path / "empty").mkdir()
    for run in (tmp_path / "new", tmp_path / "empty"):
        with pytest.raises(KeyboardInterrupt):
            trainer.train(TrainConfig(**TINY | {"epochs": 2}), run)
    assert not (tmp_path / "new").exists()
    assert list((tmp_path / "empty").iterdir()) == []  # the user's folder stays, empty


def test_an_interruption_later_keeps_the_finished_epochs_to_resume(tmp_path, monkeypatch):
    real = trainer.train_epoch

    def second_interrupted(*args, **kwargs):
        if args[5] == 2:  # the epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", second_interrupted)
    config = TrainConfig(**TINY | {"epochs": 2})
    with pytest.raises(KeyboardInterrupt):
        trainer.train(config, tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    assert folder.finished_epochs() == 1 and folder.read_config().recipe == config
    monkeypatch.setattr(trainer, "train_epoch", real)
    last = trainer.train(config, tmp_path / "run", resume=True)
    assert last["epoch"] == 2 and folder.finished_epochs() == 2


def test_an_epoch_is_kept_only_once_its_state_is_saved(tmp_path, monkeypatch):
    def interrupted_save(*args, **kwargs):
        raise KeyboardInterrupt  # after model.safetensors and metrics.jsonl, before the state

    monkeypatch.setattr(trainer.checkpoint, "save_state", interrupted_save)
    run = tmp_path / "new" / "parents" / "run"
    with pytest.raises(KeyboardInterrupt):
        trainer.train(TrainConfig(**TINY | {"epochs": 1}), run)
    assert list(tmp_path.iterdir()) == []  # the folders train made went with it


def test_a_state_file_that_is_not_this_runs_is_a_clear_error(tmp_path):
    config = TrainConfig(**TINY | {"epochs": 1})
    trainer.train(config, tmp_path / "run")
    (tmp_path / "run" / "state.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"cannot resume from .*state\.safetensors"):
        trainer.train(config.model_copy(update={"epochs": 1}), tmp_path / "run", resume=True)
    with pytest.raises(ValueError, match="changed: epochs, lr"):
        trainer.train(
            config.model_copy(update={"lr": 0.2, "epochs": 2}), tmp_path / "run", resume=True
        )


def test_bf16_runs_the_steps_and_the_test_in_bfloat16_and_keeps_float32_weights(tmp_path):
    import torch
    from safetensors.torch import load_file

    config = TrainConfig(**TINY | {"epochs": 1, "train_limit": 256})
    fp32 = trainer.train(config, tmp_path / "fp32")
    bf16 = trainer.train(config.model_copy(update={"precision": "bf16"}), tmp_path / "bf16")
    # the same data, order and initial weights: the losses differ by bfloat16's rounding only
    assert bf16["train_loss"] != fp32["train_loss"]
    assert abs(bf16["train_loss"] - fp32["train_loss"]) < 0.05 * fp32["train_loss"]
    weights = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}
    assert RunFolder(tmp_path / "bf16").read_config().recipe.precision == "bf16"


@pytest.mark.parametrize("knob", [{"nesterov": True}, {"crop_padding": 0}])
def test_the_short_run_knobs_change_the_training(tmp_path, knob):
    config = TrainConfig(**TINY | {"epochs": 1, "train_limit": 256})
    plain = trainer.train(config, tmp_path / "plain")
    again = trainer.train(config, tmp_path / "again")
    changed = trainer.train(config.model_copy(update=knob), tmp_path / "changed")
    # a run is reproduced to the bit, so what differs is the knob's doing
    assert again["train_loss"] == plain["train_loss"]
    assert changed["train_loss"] != plain["train_loss"]
    assert RunFolder(tmp_path / "changed").read_config().recipe == config.model_copy(update=knob)
