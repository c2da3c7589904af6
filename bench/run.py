"""The benchmark from end to end: a repository in, the results (a dict) out."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from skipfold.bench import wrk
from skipfold.bench.http_load import http_load, http_overhead
from skipfold.bench.measure import machine_description, measure, summary
from skipfold.bench.options import BenchConfig
from skipfold.bench.roof import apply_roofs, measure_roofs
from skipfold.bench.variants import (
    GRAPHS,
    input_size,
    onnx_variants,
    openvino_ep_variants,
    openvino_variants,
    torch_variants,
)
from skipfold.formats.model_card import ModelCard
from skipfold.formats.model_config import RepositoryError
from skipfold.formats.model_repository import ModelRepository
from skipfold.service.runtime import OPENVINO, Runner, create_session, resolve_providers
from skipfold.service.signature import read_signature


def _image_classifier(path: Path) -> bool:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        return read_signature(session, None, str(path)).image_size() is not None
    except RepositoryError:  # tensors skipfold does not serve
        return False


def repo_models(config: BenchConfig) -> dict[str, Path]:
    """name -> the latest version's model.onnx, of the models asked for (image classifiers
    only: the others a repository may hold are left out unless asked for, then refused)."""
    found = ModelRepository(config.repo).latest()
    if config.models:
        missing = [m for m in config.models if m not in found]
        if missing:
            raise ValueError(
                f"not in {config.repo}: {', '.join(missing)} (it has {', '.join(found)})"
            )
        found = {m: found[m] for m in config.models}
    others = [name for name, path in found.items() if not _image_classifier(path)]
    if config.models and others:
        raise ValueError(
            f"{', '.join(others)}: not image classifiers (one uint8 [N, H, W, 3] input); "
            "skipfold bench compares those"
        )
    found = {name: path for name, path in found.items() if name not in others}
    if not found:
        raise ValueError(f"{config.repo} holds no models; export some with skipfold export")
    if config.http_model and config.http_model not in found:
        raise ValueError(f"--http-model {config.http_model!r} is not among {', '.join(found)}")
    return found


def _in_process(
    config: BenchConfig,
    models: dict[str, Path],
    cards: dict[str, ModelCard | None],
    progress_factory: Callable[..., Any],
) -> tuple[list[dict[str, Any]], list[str]]:
    threads = config.thread_count
    variants, notes = [], []
    if "onnxruntime" in config.engines:
        variants, notes = onnx_variants(
            models, cards, config.levels, config.device, threads, config.cuda_graphs
        )
    # OpenVINO widens an fp16 export's weights and runs what it runs for the fp32 export
    half = [name for name, card in cards.items() if card and card.precision == "fp16"]
    on_openvino = {n: p for n, p in models.items() if n not in half}
    if half and {"openvino", "onnxruntime-openvino"} & set(config.engines):
        notes.append(
            f"{', '.join(half)}: fp16, made for CUDA, benched on ONNX Runtime only (OpenVINO "
            "would run it as its fp32 export)"
        )
    if "openvino" in config.engines:
        variants += openvino_variants(on_openvino, cards, threads)
    if "onnxruntime-openvino" in config.engines:
        variants += openvino_ep_variants(on_openvino, cards, threads)
    if config.torch_reference:
        extra, note = torch_variants(cards, config.device, threads, config.compile)
        variants += extra
        notes += [note] if note else []
    rng = np.random.default_rng(config.seed)
    rows = []
    with progress_factory(total=None, desc="in-process", unit="round") as progress:
        for batch in config.batch_sizes:
            progress.set_postfix(batch=batch)
            measure(variants, batch, config.duration, progress, rng)
            rows += [summary(v, batch) for v in variants]
    return rows, notes


def _over_http(
    config: BenchConfig, models: dict[str, Path], progress_factory: Callable[..., Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from PIL import Image

    assert config.url is not None
    model = config.http_model or next(iter(models))
    providers = resolve_providers(config.device)
    runner = Runner(
        create_session(
            models[model], providers, config.thread_count, "all", config.device, config.cuda_graphs
        )
    )
    session = runner.session
    size = input_size(session)
    image = np.random.default_rng(config.seed).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image[0]).save(buffer, "PNG")

    def in_process() -> Any:
        return runner(image)

    wrk_path = wrk.installed()
    with progress_factory(total=1 + bool(wrk_path), desc="HTTP overhead", unit="client") as bar:
        overhead = http_overhead(config.url, model, buffer.getvalue(), in_process, config.duration)
        bar.update(1)
        if wrk_path:
            overhead["wrk"] = wrk.wrk_overhead(
                wrk_path, config.url, model, buffer.getvalue(), in_process, config.duration
            )
            bar.update(1)
    overhead["provider"] = session.get_providers()[0].removesuffix("ExecutionProvider")
    overhead["provider"] += GRAPHS if runner.graphs is not None else ""
    overhead["image"] = f"{size[0]}x{size[1]} PNG"
    rows = []
    with progress_factory(total=len(config.concurrency), desc="HTTP", unit="level") as bar:
        for concurrency in config.concurrency:
            load = http_load(
                config.url, model, buffer.getvalue(), concurrency, config.duration, in_process
            )
            rows.append(asyncio.run(load))
            bar.update(1)
    return overhead, rows


def _openvino_version() -> str:
    from skipfold.service.openvino_runtime import version

    return version()


def installed_engines() -> list[str]:
    """The engines this install can bench: ONNX Runtime always, OpenVINO's runtime when
    installed, and ONNX Runtime's OpenVINO execution provider when this onnxruntime has it."""
    return (
        ["onnxruntime"]
        + (["openvino"] if importlib.util.find_spec("openvino") else [])
        + (["onnxruntime-openvino"] if OPENVINO in ort.get_available_providers() else [])
    )


def run_bench(config: BenchConfig, progress_factory: Callable[..., Any]) -> dict[str, Any]:
    from skipfold import __version__

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch starts its pool
    models = repo_models(config)
    cards = {name: ModelCard.read(path) for name, path in models.items()}
    rows, notes = _in_process(config, models, cards, progress_factory)
    roofs = {}
    if config.device == "cpu":
        # OpenVINO's MatMul measures the bf16 and fp16 roofs: without OpenVINO's own runtime
        # installed, those rows have none
        reduced = sorted({r["roof_precision"] for r in rows} & {"bf16", "fp16"})
        reduced = reduced if importlib.util.find_spec("openvino") else []
        roofs = measure_roofs(config.thread_count, openvino_precisions=reduced)
    apply_roofs(rows, roofs)
    overhead, http_rows = _over_http(config, models, progress_factory) if config.url else (None, [])
    if overhead and "wrk" not in overhead:
        notes.append(
            "wrk is not installed: the HTTP overhead is measured with a Python client alone, whose "
            "own cost per request is included (apt install wrk; see docs/results.md)"
        )
    described = {
        name: {
            "kind": card.kind,
            "variant": card.variant,
            "depth": card.depth,
            "width": card.width,
            "folded": card.folded,
            "precision": card.precision,
            "source_run": card.source_run,
            "test_flip": card.test_flip,
            "flops_per_image": card.flops_per_image,
            "parameters": card.parameters,
        }
        if card
        else {"kind": "unknown"}
        for name, card in cards.items()
    }
    return {
        "skipfold_version": __version__,
        "models": described,
        "onnxruntime_version": ort.__version__,
        "openvino_version": _openvino_version() if "openvino" in config.engines else None,
        "machine": machine_description(),
        "threads": config.thread_count,
        "device": config.device,
        "duration_s": config.duration,
        "roofs": {p: {"gops": r.gops, "method": r.method} for p, r in roofs.items()},
        "notes": notes,
        "in_process": rows,
        "http_overhead": overhead,
        "http": http_rows,
    }
