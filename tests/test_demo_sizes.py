"""The demo's choices without training: the size from a given speed, the recipe, the samples."""

import inspect

import pytest

from skipfold import demo
from skipfold.demo_sizes import SHAPES_TEST_IMAGES, SHAPES_TRAIN_IMAGES, SIZES, choose_size
from skipfold.training.config import TrainConfig


def _speeds(**by_name: float):
    measured: list[str] = []

    def speed_of(size):
        measured.append(size.name)
        return by_name[size.name]

    return speed_of, measured


def test_a_fast_machine_gets_the_largest_size_and_measures_nothing_else():
    speed_of, measured = _speeds(**{SIZES[0].name: 1_000.0})
    choice = choose_size(speed_of, budget_s=120.0)
    assert choice.size == SIZES[0] and measured == [SIZES[0].name]
    # 2 variants x 3 epochs x (10,000 training images + 2,000 test images at a third the cost)
    assert choice.readings[0].estimated_s == pytest.approx(2 * 3 * (10_000 + 2_000 / 3) / 1_000)
    assert choice.describe(120.0) == [
        f"{SIZES[0].name}: the training step runs at 1,000 images/s here, about 64 s for both "
        "variants (within the 120 s budget)",
        f"training {SIZES[0].name}",
    ]


def test_a_slow_machine_gets_the_first_size_that_fits():
    speeds = {SIZES[0].name: 100.0, SIZES[1].name: 400.0, SIZES[2].name: 400.0}
    speed_of, measured = _speeds(**speeds)
    choice = choose_size(speed_of, budget_s=170.0)  # 64 s x 2.5 for the second size: 160 s
    assert choice.size == SIZES[1] and measured == [SIZES[0].name, SIZES[1].name]
    assert [round(r.estimated_s) for r in choice.readings] == [640, 160]


def test_when_nothing_fits_the_smallest_is_the_floor_and_says_so():
    speed_of, measured = _speeds(**{size.name: 50.0 for size in SIZES})
    choice = choose_size(speed_of, budget_s=60.0)
    assert choice.size == SIZES[-1] and len(measured) == len(SIZES)
    assert choice.describe(60.0)[-1] == f"none fits: training the smallest, {SIZES[-1].name}"


def test_no_sizes_is_an_error():
    with pytest.raises(ValueError, match="no demo sizes"):
        choose_size(lambda size: 1.0, sizes=())


def test_every_size_is_a_valid_training_recipe_on_the_split_the_estimate_counts():
    from skipfold.training.datasets import load_dataset

    assert [TrainConfig(**size.recipe).epochs for size in SIZES] == [3, 3, 2]
    assert [TrainConfig(**size.recipe).width for size in SIZES] == [2, 1, 1]
    split = inspect.signature(load_dataset).parameters
    assert (split["shapes_train"].default, split["shapes_test"].default) == (
        SHAPES_TRAIN_IMAGES,
        SHAPES_TEST_IMAGES,
    )


def test_samples_are_one_png_per_class(tmp_path):
    paths = demo.write_samples(tmp_path)
    assert [p.stem for p in paths][:3] == ["circle", "ring", "square"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_the_recipe_takes_a_data_folder_given_as_a_path(tmp_path):
    config = demo.demo_config("skipinit", "imagefolder", tmp_path)  # the largest size
    assert (config.data_dir, config.standardize, config.epochs) == (str(tmp_path), "per-image", 3)
    assert config.model_dump(
        exclude={"variant", "dataset", "data_dir", "depth", "width", "epochs"}
    ) == TrainConfig().model_dump(
        exclude={"variant", "dataset", "data_dir", "depth", "width", "epochs"}
    )  # everything else: the defaults
