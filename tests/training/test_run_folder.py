"""The run folder's config: one typed record, validated, versioned, JSON in and out."""

import json

import pytest

from skipfold.models.spec import ModelSpec
from skipfold.training.config import TrainConfig
from skipfold.training.run_folder import CONFIG, DataSpec, RunConfig, RunFolder


def config(**recipe) -> RunConfig:
    return RunConfig(
        model=ModelSpec.create("skipinit", 10, 1),
        data=DataSpec(
            dataset="shapes",
            classes=["a", "b", "c"],
            mean=[0.4, 0.5, 0.6],
            std=[0.2, 0.2, 0.2],
            standardize="per-image",
            input_size=(32, 32),
        ),
        recipe=TrainConfig(variant="skipinit", depth=10, width=1, **recipe),
    )


def test_json_round_trip_is_exact(tmp_path):
    folder = RunFolder(tmp_path)
    written = config(lr=0.2, epochs=3)
    folder.write_config(written)
    assert folder.read_config() == written
    raw = json.loads((tmp_path / CONFIG).read_text())
    assert raw["schema_version"] == 1 and raw["recipe"]["lr"] == 0.2


LEGACY = {  # config.json as skipfold 0.1 wrote it (training/trainer.py at 7b79c58)
    "model": {
        "variant": "skipinit",
        "depth": 10,
        "width": 1,
        "num_classes": 10,
        "dropout": 0.0,
        "head_dropout": 0.0,
        "alpha_init": 0.0,
    },
    "data": {
        "dataset": "shapes",
        "data_dir": None,
        "classes": [
            "circle",
            "ring",
            "square",
            "frame",
            "diamond",
            "triangle",
            "plus",
            "cross",
            "star",
            "crescent",
        ],
        "mean": [0.49, 0.5, 0.51],
        "std": [0.29, 0.28, 0.3],
        "standardize": "per-image",
        "input_size": [32, 32],
        "train_images": 10000,
        "test_images": 2000,
    },
    "recipe": {
        "variant": "skipinit",
        "depth": 10,
        "width": 1,
        "dropout": 0.0,
        "alpha_init": None,
        "dataset": "shapes",
        "data_dir": None,
        "train_limit": None,
        "test_limit": None,
        "standardize": "per-image",
        "epochs": 6,
        "batch_size": 64,
        "lr": 0.1,
        "schedule": "cosine",
        "warmup_epochs": 0.0,
        "momentum": 0.9,
        "weight_decay": 0.0005,
        "device": "auto",
        "compile": False,
        "sync_bn": False,
        "seed": 0,
    },
    "seed": 0,
    "software": {"skipfold": "0.1.0", "torch": "2.13.0+cpu", "numpy": "2.4.6", "python": "3.11.7"},
    "created": "2026-11-30T10:00:00+0000",
}


def test_a_config_written_by_skipfold_0_1_still_reads(tmp_path):
    (tmp_path / CONFIG).write_text(json.dumps(LEGACY))
    read = RunFolder(tmp_path).read_config()
    assert read.schema_version == 1 and read.model == ModelSpec.create("skipinit", 10, 1)
    assert (read.data.classes[8], read.data.input_size) == ("star", (32, 32))
    assert (read.recipe.lr, read.recipe.schedule, read.software["skipfold"]) == (
        0.1,
        "cosine",
        "0.1.0",
    )
    assert read.recipe.recipe == "paper"  # the defaults before 0.3 were the paper's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.update(schema_version=2), "schema_version 2"),
        (lambda raw: raw["data"].update(classes=["only one"]), "data.classes"),
        (lambda raw: raw["model"].update(depth=11), r"6N\+4"),
        (lambda raw: raw["recipe"].update(lr=-1), "recipe.lr"),
        (lambda raw: raw["recipe"].update(unknown_knob=1), "recipe.unknown_knob"),
        (lambda raw: raw.pop("data"), "data: field required"),
    ],
)
def test_an_invalid_config_is_one_clear_line(tmp_path, change, message):
    raw = json.loads(config().to_json())
    change(raw)
    (tmp_path / CONFIG).write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=message) as error:
        RunFolder(tmp_path).read_config()
    assert "\n" not in str(error.value)


def test_not_json_and_not_a_run_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        RunFolder(tmp_path).read_config()
    (tmp_path / CONFIG).write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        RunFolder(tmp_path).read_config()


def test_folder_checks(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.check_new()  # does not exist yet: fine
    with pytest.raises(ValueError, match="cannot resume"):
        folder.check_resumable()
    folder.path.mkdir()
    folder.check_new()  # empty: fine
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds a run"):
        folder.check_new()
    with pytest.raises(ValueError, match=r"model\.safetensors is missing"):
        (folder / CONFIG).write_text("{}")
        folder.check_trained()


def test_metrics_and_completion(tmp_path):
    folder = RunFolder(tmp_path)
    rows = [{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "step": 3, "diverged": True}]
    folder.write_metrics(rows)
    assert folder.read_metrics() == rows
    assert folder.finished_epochs() == 1 and folder.last_test_accuracy() == 0.5
    assert not folder.is_complete(1)  # no model.safetensors
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert folder.is_complete(1) and not folder.is_complete(2)


def test_train_config_rules():
    with pytest.raises(ValueError, match="alpha_init applies to"):
        TrainConfig(variant="bn", alpha_init=1.0)
    with pytest.raises(ValueError, match="data_dir is required"):
        TrainConfig(dataset="cifar10")
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(momentum=1.0)
    assert TrainConfig(variant="skipinit", alpha_init=0.5).model_options((32, 32)) == {
        "dropout": 0.0,
        "alpha_init": 0.5,
        "architecture": "wrn",
        "activation": "relu",
        "init_scale": 1.0,
    }
    mlp = TrainConfig(architecture="mlp", variant="none", depth=3, width=100)
    assert mlp.model_options((28, 28))["input_size"] == (28, 28)
    with pytest.raises(ValueError, match="the mlp comes as bn or none"):
        TrainConfig(architecture="mlp", variant="skipinit", depth=3)
    with pytest.raises(ValueError, match="6N"):
        TrainConfig(depth=3)
