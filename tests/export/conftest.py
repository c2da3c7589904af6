"""Trained-looking networks without training: random weights and randomized BN statistics."""

from pathlib import Path

import numpy as np
import pytest
import torch

from skipfold.models import build_model
from skipfold.training import checkpoint
from skipfold.training.config import TrainConfig
from skipfold.training.run_folder import DataSpec, RunConfig, RunFolder

CLASSES = [f"class{i}" for i in range(10)]


def randomize(model: torch.nn.Module, seed: int = 0, *, odd_gammas: bool = True) -> torch.nn.Module:
    """Give every BN running statistics and affine parameters like a trained network's.

    With `odd_gammas`, some channels get a negative, a zero and a tiny gamma: the cases a
    folding must handle exactly and a naive one gets wrong.
    """
    generator = torch.Generator().manual_seed(seed)

    def draw(shape, low, high):
        return torch.rand(shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=generator))
                module.running_var.copy_(draw(c, 0.2, 4.0))
                module.weight.copy_(draw(c, 0.3, 1.5))
                module.bias.copy_(0.5 * torch.randn(c, generator=generator))
                if odd_gammas:
                    module.weight[0] = -module.weight[0]
                    module.weight[1] = 0.0
                    module.weight[2] = 1e-7
            elif getattr(module, "alpha", None) is not None:
                module.alpha.copy_(draw((), -0.5, 0.5))
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return model.eval()


def make_run(
    folder: Path,
    variant: str = "bn",
    depth: int = 16,
    width: int = 2,
    *,
    test_limit: int | None = None,
    model_options: dict | None = None,
    **randomize_options,
) -> Path:
    """A run folder as `skipfold train` leaves it, holding a randomized network (`test_limit`:
    of the `shapes` test images the exports that measure accuracy use; `model_options`:
    architecture, activation, init_scale)."""
    options = dict(model_options or {})
    shape = {"input_size": (32, 32)} if options.get("architecture") == "mlp" else {}
    model = randomize(build_model(variant, depth, width, **options, **shape), **randomize_options)
    folder.mkdir(parents=True)
    run = RunFolder(folder)
    checkpoint.save_model(run, model)
    run.write_config(
        RunConfig(
            model=model.spec,
            data=DataSpec(
                dataset="shapes",
                classes=CLASSES,
                mean=[0.45, 0.5, 0.55],
                std=[0.25, 0.2, 0.3],
                input_size=(32, 32),
            ),
            recipe=TrainConfig(
                variant=variant, depth=depth, width=width, test_limit=test_limit, **options
            ),
        )
    )
    run.write_metrics([{"epoch": 1, "test_acc": 0.5}])
    return folder


@pytest.fixture
def bn_run(tmp_path) -> Path:
    return make_run(tmp_path / "bn-16-2")


def top_predictions(url: str, model: str, images: list[Path]) -> list[dict]:
    """The server's top prediction (label, probability, ...) for each image file, in order."""
    import httpx

    return [
        httpx.post(
            f"{url}/predict?model={model}",
            content=path.read_bytes(),
            headers={"Content-Type": "image/png"},
        ).json()["results"][0]["predictions"][0]
        for path in images
    ]


@pytest.fixture(scope="package")
def precision_repo(default_run, tmp_path_factory) -> tuple[Path, dict[tuple[str, str], str]]:
    """The default bn and skipinit runs exported at fp32, int8 and fp16 into one repository
    (models bn, bn-int8, bn-fp16, skipinit, ...), with what each export printed."""
    from tests.helpers import skipfold

    repo = tmp_path_factory.mktemp("precisions") / "repo"
    printed = {}
    for variant in ("bn", "skipinit"):
        run, trained = default_run(variant)
        assert trained.returncode == 0, trained.stderr
        for precision in ("fp32", "int8", "fp16"):
            result = skipfold("export", run, "--repo", repo, "--precision", precision)
            assert result.returncode == 0, result.stderr
            printed[variant, precision] = result.stdout
    return repo, printed


def run_test_set(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's test images and labels as it saw them (its data set, seed and limits)."""
    from skipfold.training.datasets import load_dataset

    config = RunFolder(run).read_config()
    data = load_dataset(
        config.data.dataset, config.data.data_dir, seed=config.recipe.seed, download=False
    ).limit(config.recipe.train_limit, config.recipe.test_limit)
    return data.test_images, data.test_labels


def onnx_top1(path: Path, images: np.ndarray) -> np.ndarray:
    """Each image's top class from the graph at `path`, by ONNX Runtime called directly."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    chunks = [
        session.run(["logits"], {"images": images[i : i + 500]})[0]
        for i in range(0, len(images), 500)
    ]
    return np.concatenate(chunks).argmax(1)


def float64_logits(
    model: torch.nn.Module, images: np.ndarray, mean, std, per_image: bool = False
) -> np.ndarray:
    """The unfolded network in float64, standardizing uint8 NHWC images as training does, written
    here on its own: the reference a folded float32 export is held to."""
    import copy
    import math

    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    if per_image:
        centred = x - x.mean((1, 2, 3), keepdim=True)
        floor = 255.0 / math.sqrt(x[0].numel())
        x = centred / centred.square().mean((1, 2, 3), keepdim=True).sqrt().clamp_min(floor)
    else:
        mean64 = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
        std64 = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
        x = (x / 255.0 - mean64) / std64
    with torch.no_grad():
        return copy.deepcopy(model).double().eval()(x).numpy()


def float32_error(logits: np.ndarray, reference: np.ndarray) -> float:
    """Largest logit difference relative to the largest logit: float32 through a WRN lands
    near 1e-6; a wrong fold (a misplaced shift, a sign) lands near 1."""
    return float(np.abs(logits - reference).max() / np.abs(reference).max())
