"""`skipfold demo`: the whole system in one command.

Train a BN and a SkipInit Wide-ResNet on the built-in `shapes` data, at the size that fits
this machine (`demo_sizes`: about two minutes of training on any of the CPUs we meet), export BN
folded and unfolded and SkipInit into a model repository, time them, print example requests,
and serve until Ctrl-C. A second run reuses what the first one made (an interrupted training
resumes), so it is serving within seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from skipfold.common import arguments
from skipfold.demo_sizes import DEFAULT_BUDGET_S, SIZES, DemoSize, choose_size
from skipfold.formats.model_repository import ModelRepository
from skipfold.training.config import DATASETS, TrainConfig

VARIANTS = ("bn", "skipinit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        type=arguments.folder_to_write,
        default=Path("demo"),
        help="where runs/, repo/ and samples/ go",
    )
    parser.add_argument("--retrain", action="store_true", help="train again even if runs exist")
    parser.add_argument(
        "--train-budget",
        type=arguments.at_least(0.0, float),
        default=DEFAULT_BUDGET_S,
        metavar="SECONDS",
        help="train the largest demo size whose estimate for both trainings, from the "
        "speed measured here, fits (shapes only; 0: the smallest) (default: %(default)s)",
    )
    parser.add_argument("--dataset", default="shapes", choices=DATASETS)
    parser.add_argument(
        "--data-dir", type=arguments.existing_folder, help="for cifar10, cifar100, imagefolder"
    )
    parser.add_argument(
        "--repo", type=arguments.existing_folder, help="serve this repository; no training"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--port", type=arguments.port, default=8000, help="HTTP port")
    parser.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="stop after training, export and timing",
    )


def demo_config(
    variant: str, dataset: str, data_dir: str | Path | None, size: DemoSize = SIZES[0]
) -> TrainConfig:
    """The demo's recipe for one variant at one size; the rest is `skipfold train`'s defaults."""
    return TrainConfig(variant=variant, dataset=dataset, data_dir=data_dir, **size.recipe)


def _recorded_config(run: Path) -> TrainConfig | None:
    from skipfold.training.run_folder import CONFIG, RunFolder

    if not (run / CONFIG).is_file():
        return None
    try:
        return RunFolder(run).read_config().recipe
    except ValueError:
        return None


def _size(
    runs: dict[str, Path], dataset: str, data_dir: str | Path | None, budget_s: float
) -> DemoSize:
    """The size the runs already there were trained at, else the one that fits this machine."""
    for variant, run in runs.items():
        recorded = _recorded_config(run)
        for size in SIZES:
            if recorded is not None and recorded == demo_config(variant, dataset, data_dir, size):
                return size
    if dataset != "shapes":
        return SIZES[0]
    from skipfold.training.speed import training_speed

    choice = choose_size(
        lambda size: training_speed(demo_config("bn", dataset, data_dir, size)), budget_s, SIZES
    )
    print("sizing the trainings to this machine:\n  " + "\n  ".join(choice.describe(budget_s)))
    return choice.size


def _train(run: Path, config: TrainConfig) -> None:
    from skipfold.training.run_folder import STATE, RunFolder
    from skipfold.training.trainer import train

    folder = RunFolder(run)
    if folder.is_complete(config.epochs):
        print(f"reusing {run} (pass --retrain to train again)")
        return
    resume = (folder / STATE).is_file()
    print(
        f"training {config.variant} WRN-{config.depth}-{config.width} for {config.epochs} "
        f"epochs on {config.dataset} into {run}" + (" (resuming)" if resume else "")
    )
    if run.exists() and not resume:
        shutil.rmtree(run)  # an attempt that never finished an epoch
    train(config, run, resume=resume)


def _exported(repository: ModelRepository, name: str, run: Path) -> bool:
    """Does the latest version of `name` hold this run's current weights?"""
    from skipfold.common.io import file_sha256
    from skipfold.formats.model_card import ModelCard
    from skipfold.training.run_folder import MODEL

    found = repository.versions(name)
    if not found:
        return False
    card = ModelCard.read(repository.model_file(name, found[-1]))
    return card is not None and card.weights_sha256 == file_sha256(run / MODEL)


def prepare(
    workdir: Path,
    dataset: str,
    data_dir: str | Path | None,
    retrain: bool,
    budget_s: float = DEFAULT_BUDGET_S,
) -> Path:
    """Train (or reuse) both runs and export the three models; return the repository."""
    from skipfold.export.exporter import export_run

    repo = workdir / ("repo" if dataset == "shapes" else f"repo-{dataset}")  # one class list each
    repository = ModelRepository(repo)
    runs = {v: workdir / "runs" / f"{dataset}-{v}" for v in VARIANTS}
    if retrain:
        for run in runs.values():
            shutil.rmtree(run, ignore_errors=True)
    size = _size(runs, dataset, data_dir, budget_s)
    for variant, run in runs.items():
        config = demo_config(variant, dataset, data_dir, size)
        if run.exists() and _recorded_config(run) not in (None, config):
            print(f"{run} was trained with another recipe: training it again")
            shutil.rmtree(run)
        _train(run, config)
    for name, run, fold in (
        ("bn", runs["bn"], True),
        ("bn-unfolded", runs["bn"], False),
        ("skipinit", runs["skipinit"], True),
    ):
        if _exported(repository, name, run):
            print(f"reusing {repo / name}")
            continue
        exported, version, path = export_run(run, repo, name=name, fold=fold)
        diff = exported.card.verification.max_abs_logit_diff
        print(f"exported {path} (version {version}; verified, max |logit diff| {diff:.1e})")
    return repo


class _Quiet:
    """A progress bar that shows nothing (the demo prints its own lines)."""

    def __init__(self, **_: object) -> None: ...
    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *_: object) -> None: ...
    def update(self, *_: object) -> None: ...
    def set_postfix(self, **_: object) -> None: ...


def _latency_table(repo: Path) -> None:
    from skipfold.bench.options import BenchConfig
    from skipfold.bench.ratios import ratios
    from skipfold.bench.report import markdown
    from skipfold.bench.run import run_bench

    print("\nlatency, batch 1, in-process ONNX Runtime (3 s per batch size, interleaved):")
    config = BenchConfig(
        repo=repo,
        batch_sizes=[1],
        levels=["disabled", "all"],
        duration=3.0,
        torch_reference=False,
    )
    results = run_bench(config, _Quiet)
    results["ratios"] = ratios(results, results["models"])
    print(
        markdown(
            results,
            f"skipfold bench --repo {repo} --batch-sizes 1 --levels "
            "disabled,all --duration 3 --no-torch --out results/bench",
        )
    )


def write_samples(folder: Path) -> list[Path]:
    """One test image per shape class, to send to the server."""
    from PIL import Image

    from skipfold.common.shapes import class_samples

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in class_samples():
        path = folder / f"{name}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def check(args: argparse.Namespace) -> None:
    if args.dataset != "shapes" and args.data_dir is None and args.repo is None:
        raise ValueError(f"--dataset {args.dataset} needs --data-dir")


def run(args: argparse.Namespace) -> int:
    if args.repo is not None:
        repo = args.repo
    else:
        repo = prepare(args.workdir, args.dataset, args.data_dir, args.retrain, args.train_budget)
        _latency_table(repo)
    sample = write_samples(args.workdir / "samples")[8]  # star.png, a shapes image
    if not args.serve:
        return 0
    url = f"http://{args.host}:{args.port}"
    print(
        f"""serving {repo} at {url}; try, from another terminal:

  curl -F file=@{sample} '{url}/predict?model=skipinit&top_k=3'
  curl -H 'Content-Type: image/png' --data-binary @{sample} '{url}/predict?model=bn'
  curl {url}/models
  curl {url}/v2/models/bn
  skipfold bench --repo {repo} --url {url} --out results/bench

Ctrl-C stops the server.
""",
        flush=True,
    )
    command = [
        sys.executable,
        "-m",
        "skipfold",
        "serve",
        "--repo",
        str(repo),
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    sys.stderr.flush()
    os.execv(sys.executable, command)  # the server runs without the torch this process loaded
