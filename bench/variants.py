"""What the benchmark times: each model on ONNX Runtime at each optimization level, on OpenVINO
(its runtime, or ONNX Runtime's OpenVINO execution provider) at each precision the CPU computes
natively (when installed), and the same network
in PyTorch eager (optional: without torch those rows are skipped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skipfold.formats.model_card import ModelCard
from skipfold.service.runtime import CUDA, Runner, create_session, resolve_providers

GRAPHS = "+graphs"  # appended to the provider of rows run through CUDA graphs


@dataclass
class Variant:
    """Something that maps a uint8 batch to outputs, and how it is labelled."""

    model: str
    engine: str  # "onnxruntime", "openvino", "onnxruntime-openvino", "torch-eager", ...
    provider: str
    level: str
    flops_per_image: int
    input_size: tuple[int, int]  # (height, width) of the uint8 images it takes
    run: Callable[[np.ndarray], Any]
    precision: str = "fp32"  # the card's, or what OpenVINO computes in: bf16 / fp16
    roof: str = ""  # the roof it is held to, when not its precision's
    latencies: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)


def input_size(session: Any) -> tuple[int, int]:
    """(height, width) of an image model's uint8 [N, H, W, 3] input."""
    shape = session.get_inputs()[0].shape
    return int(shape[1]), int(shape[2])


def onnx_variants(
    models: dict[str, Path],
    cards: dict[str, ModelCard | None],
    levels: list[str],
    device: str,
    threads: int,
    cuda_graphs: bool = False,
) -> tuple[list[Variant], list[str]]:
    """Each model at each level, run as the server runs it (runtime.Runner: I/O binding on
    CUDA); with `cuda_graphs` on CUDA, each also through CUDA graphs (provider "CUDA+graphs"),
    or a note where a model cannot run under them."""
    providers = resolve_providers(device)
    variants, notes = [], []
    for name, path in models.items():
        card = cards[name]
        flops = card.flops_per_image if card else 0
        precision = card.precision if card else "fp32"
        for level in levels:
            for graphs in [False, True] if cuda_graphs and providers[0] == CUDA else [False]:
                try:
                    runner = Runner(create_session(path, providers, threads, level, device, graphs))
                except Exception as exc:  # ONNX Runtime raises its own types
                    if not graphs:
                        raise
                    notes.append(f"{name}: no CUDA graphs at level {level}: {exc}")
                    continue
                provider = runner.providers[0].removesuffix("ExecutionProvider")
                provider += GRAPHS if runner.graphs is not None else ""
                # ONNX Runtime's CPU provider runs an fp16 graph in float32 between casts
                roof = "fp32" if precision == "fp16" and provider == "CPU" else ""
                size = input_size(runner.session)
                engine = "onnxruntime"
                variants.append(
                    Variant(name, engine, provider, level, flops, size, runner, precision, roof)
                )
    return variants, notes


def openvino_variants(
    models: dict[str, Path], cards: dict[str, ModelCard | None], threads: int
) -> list[Variant]:
    """Each float32 model at every float format the CPU computes natively; each int8 model once
    (its float parts in fp32, as the server's auto runs it)."""
    from skipfold.service.openvino_runtime import OpenVINORunner, cpu_precisions

    variants = []
    for name, path in models.items():
        card = cards[name]
        flops = card.flops_per_image if card else 0
        quantized = card is not None and card.precision == "int8"
        for precision in ["fp32"] if quantized else cpu_precisions():
            runner = OpenVINORunner(path, threads, precision)
            shape = runner.compiled.inputs[0].get_partial_shape()
            size = (shape[1].get_length(), shape[2].get_length())
            label = card.precision if quantized and card else precision
            variants.append(Variant(name, "openvino", "CPU", "-", flops, size, runner, label))
    return variants


def openvino_ep_variants(
    models: dict[str, Path], cards: dict[str, ModelCard | None], threads: int
) -> list[Variant]:
    """ONNX Runtime's OpenVINO execution provider: each float32 model in fp32 and, where the CPU
    has it, bf16; each int8 model once, as the server's auto runs it."""
    from skipfold.service.runtime import create_openvino_ep_session, openvino_ep_precision

    variants = []
    for name, path in models.items():
        card = cards[name]
        flops = card.flops_per_image if card else 0
        quantized = card is not None and card.precision == "int8"
        native = openvino_ep_precision("auto")
        for precision in [native] if quantized else sorted({"fp32", native}, reverse=True):
            runner = Runner(create_openvino_ep_session(path, threads, "all", precision))
            size = input_size(runner.session)
            label = card.precision if quantized and card else precision
            variants.append(
                Variant(name, "onnxruntime-openvino", "CPU", "-", flops, size, runner, label)
            )
    return variants


def torch_variants(
    cards: dict[str, ModelCard | None], device: str, threads: int, compile: bool
) -> tuple[list[Variant], str]:
    """The same float32 networks in PyTorch (random weights: latency does not depend on their
    values)."""
    try:
        import torch

        from skipfold.export.onnx_graph import ImageClassifier
        from skipfold.models import FlipAveraged, build_model
    except ImportError as exc:
        return [], f"PyTorch reference skipped: {exc} (pip install 'skipfold[export]')"
    torch.set_num_threads(threads)
    target = "cuda" if device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
    # float32 as ONNX Runtime computes it (runtime.create_session turns TF32 off on CUDA);
    # PyTorch's default runs cuDNN's convolutions in TF32
    torch.backends.cudnn.allow_tf32 = False
    variants = []
    for name, card in cards.items():
        if card is None or card.precision != "fp32":
            continue  # not a skipfold model, or not a float32 one: nothing to rebuild
        # a folded network computes what the `none` variant does: convolutions and ReLUs, no
        # BN, no alpha (its convolutions' biases aside); with sigmoids some BNs stay as affines,
        # which the unfolded network's BNs in eval mode compute
        folded_away = card.folded and card.activation == "relu"
        variant = "none" if folded_away else card.variant
        options: dict[str, Any] = {"architecture": card.architecture, "activation": card.activation}
        if card.architecture == "mlp":
            options["input_size"] = card.input_size
        network = build_model(variant, card.depth, card.width, len(card.classes), **options)
        network = network.eval()
        if card.test_flip:
            network = FlipAveraged(network)
        per_image = card.standardize == "per-image"
        wrapped = ImageClassifier(network, card.mean, card.std, per_image).eval().to(target)
        engines = [("torch-eager", wrapped)]
        if compile:
            engines.append(("torch-compile", torch.compile(wrapped)))
        for engine, module in engines:

            def run(images: np.ndarray, module: Any = module) -> Any:
                with torch.inference_mode():
                    out = module(torch.from_numpy(images).to(target))
                    if target == "cuda":
                        torch.cuda.synchronize()
                    return out

            flops, size = card.flops_per_image, card.input_size
            variants.append(Variant(name, engine, target.upper(), "-", flops, size, run))
    return variants, ""
