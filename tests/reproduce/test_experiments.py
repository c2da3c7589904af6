import shlex
from pathlib import Path

import pytest

from skipfold.cli import build_parser
from skipfold.reproduce.experiments import ARMS, EXPERIMENT_TABLE, EXPERIMENTS, PRESETS, grid
from skipfold.training.cli import config_from_args


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_point_has_its_own_folder_and_a_command_that_rebuilds_its_config(experiment, preset):
    points = grid(experiment, preset, data_dir="/data/cifar10")
    spec, chosen = EXPERIMENT_TABLE[experiment], EXPERIMENT_TABLE[experiment].presets[preset]
    sizes = len(chosen.depths) * len(chosen.batch_sizes or (1,)) * len(chosen.lrs) * chosen.seeds
    sizes *= len(chosen.init_scales)
    assert len(points) == sizes * len(spec.arms)
    assert len({p.name for p in points}) == len(points)
    assert all(p.name.isascii() and " " not in p.name for p in points)
    parser = build_parser("train")
    for point in points[:: max(1, len(points) // 40)]:
        argv = shlex.split(shlex.join(point.command(Path("out"))))
        assert argv[:2] == ["skipfold", "train"]
        args = parser.parse_args(argv[1:])
        assert config_from_args(args) == point.config
        assert args.out == Path("out") / point.name


def test_the_depth_grid_has_the_papers_arms_and_alpha_one_over_root_blocks():
    points = grid("depth", "cpu")
    arms = {p.arm for p in points}
    assert arms == {
        "bn",
        "skipinit",
        "skipinit alpha=1",
        "skipinit alpha=1/sqrt(d)",
        "none",
        "none /sqrt(2)",
    }
    deep = [p for p in points if p.arm == "skipinit alpha=1/sqrt(d)" and p.config.depth == 100]
    assert deep and all(p.config.alpha_init == pytest.approx(48**-0.5) for p in deep)
    assert {p.config.variant for p in points if p.arm == "none /sqrt(2)"} == {"none-scaled"}
    assert max(p.config.depth for p in points) >= 100


def test_the_paper_preset_is_the_papers_setting():
    points = grid("depth", "paper", data_dir="/data/cifar10")
    configs = {
        (
            p.config.dataset,
            p.config.width,
            p.config.epochs,
            p.config.batch_size,
            p.config.recipe,
            p.config.schedule,
        )
        for p in points
    }
    assert configs == {("cifar10", 2, 200, 64, "paper", "skipinit")}
    assert {p.config.depth for p in points} == {16, 100, 1000}
    assert EXPERIMENT_TABLE["depth"].presets["paper"].seeds == 7
    assert EXPERIMENT_TABLE["depth"].presets["paper"].keep == 5


def test_arm_labels_are_the_ones_the_report_and_the_folders_use():
    assert ARMS["skipinit alpha=1"].alpha_init(16) == 1.0
    assert ARMS["skipinit"].alpha_init(1000) == 0.0
    assert ARMS["bn"].alpha_init(16) is None
