"""The models a server holds, read from a Triton-layout repository through `ModelRepository`.

Torch-free and onnx-free: everything comes from the files and ONNX Runtime's view of them (the
model card in the graph's metadata carries classes, variant and the rest).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from skipfold.formats.model_card import ModelCard
from skipfold.formats.model_config import RepositoryError
from skipfold.formats.model_repository import ModelRepository
from skipfold.service import runtime
from skipfold.service.cuda_graphs import CudaGraphError
from skipfold.service.engine_check import check_engine
from skipfold.service.runtime import DeviceError, Runner, create_session, resolve_providers
from skipfold.service.served_model import ServedModel
from skipfold.service.settings import Settings
from skipfold.service.signature import read_signature

log = logging.getLogger("skipfold.service")


class ModelNotFound(LookupError):
    """Unknown model name or version (HTTP 404)."""


def load_model(
    repository: ModelRepository, name: str, version: int, settings: Settings
) -> ServedModel:
    path = repository.model_file(name, version)
    try:
        session = create_session(
            path,
            resolve_providers(settings.device),
            settings.intra_op_threads,
            settings.optimization_level,
            settings.device,
            settings.cuda_graphs,
        )
        signature = read_signature(session, repository.config(name), str(path))
        inputs, outputs = [t.name for t in signature.inputs], [t.name for t in signature.outputs]
        runner = Runner(session, inputs, outputs)
    except CudaGraphError as exc:
        raise RepositoryError(f"{path}: {exc} (serve it without --cuda-graphs)") from None
    except RuntimeError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types
        hint = " (or serve it without --cuda-graphs)" if settings.cuda_graphs else ""
        raise RepositoryError(f"{path}: ONNX Runtime cannot load it: {exc}{hint}") from None
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    try:
        card = ModelCard.from_metadata(metadata, source=str(path))
    except ValueError as exc:
        raise RepositoryError(str(exc)) from None
    scores = signature.outputs[0].dims[-1] if signature.outputs[0].dims else None
    on_cpu = settings.engine == "onnxruntime" and runtime.CUDA not in session.get_providers()
    if card and card.precision == "fp16" and on_cpu:
        log.warning(
            "%s version %d is fp16, made for CUDA: ONNX Runtime's CPU provider computes it in "
            "float32 between casts, slower than its fp32 export",
            name,
            version,
        )
    model = ServedModel(
        name=name,
        version=version,
        path=path,
        runner=runner,
        classes=_classes(card, repository, name, scores),
        signature=signature,
        input_size=signature.image_size(),
        card=card,
        metadata=metadata,
    )
    if settings.engine != "onnxruntime":
        _on_openvino(model, settings)
    return model


def _on_openvino(model: ServedModel, settings: Settings) -> None:
    """Compile the model with OpenVINO (its own runtime, or ONNX Runtime's OpenVINO execution
    provider) and check it against its ONNX Runtime CPU session, which then goes."""
    from skipfold.service import openvino_runtime

    threads, engine = settings.intra_op_threads, settings.engine
    if model.input_size is None:
        raise RepositoryError(
            f"{model.path}: --engine {engine} serves image classifiers only (skipfold checks "
            "OpenVINO's answers against ONNX Runtime's on images); serve this model with "
            "--engine onnxruntime"
        )
    if engine == "openvino":
        quantized = model.card is not None and model.card.precision == "int8"
        precision = openvino_runtime.resolve_precision(settings.inference_precision, quantized)
    else:
        precision = runtime.openvino_ep_precision(settings.inference_precision)
    try:
        if engine == "openvino":
            runner = openvino_runtime.OpenVINORunner(
                model.path, threads, precision, model.input_names, model.output_names
            )
        else:
            session = runtime.create_openvino_ep_session(
                model.path, threads, settings.optimization_level, precision
            )
            runner = Runner(session, model.input_names, model.output_names)
    except DeviceError:
        raise
    except Exception as exc:  # OpenVINO and ONNX Runtime raise their own exception types
        raise RepositoryError(f"{model.path}: {engine} cannot compile it: {exc}") from None
    reference = model.runner
    model.engine_check = check_engine(
        runner,
        reference,
        model.probabilities,
        model.input_size,
        (settings.engine_tolerance, settings.engine_min_agreement),
        f"{model.name} version {model.version} on {engine} {precision}",
    )
    model.runner, model.engine, model.inference_precision = runner, engine, precision


def _classes(
    card: ModelCard | None, repository: ModelRepository, name: str, num_classes: int | None
) -> list[str]:
    """The model card's classes, else labels.txt's, else numbers for a fixed number of scores,
    else none (Triton's classification then gives indices only)."""
    if card is not None:
        return list(card.classes)
    labels = repository.labels(name)
    if labels:
        return labels
    if num_classes is not None and num_classes > 0:
        return [str(i) for i in range(num_classes)]
    return []


class ModelRegistry:
    """name -> version -> ServedModel, plus which model answers when none is named."""

    def __init__(self, models: dict[str, dict[int, ServedModel]], default: str) -> None:
        self.models = models
        self.default = default

    @classmethod
    def load(cls, settings: Settings) -> ModelRegistry:
        repository = ModelRepository(settings.repository)
        repo = repository.path
        available = repository.models()
        if not available:
            raise RepositoryError(
                f"model repository {repo} holds no models (each needs NAME/config.pbtxt and "
                "NAME/VERSION/model.onnx; write them with 'skipfold export')"
            )
        selection = settings.pinned_versions() or {name: [] for name in available}
        models: dict[str, dict[int, ServedModel]] = {}
        for name, pinned in selection.items():
            if name not in available:
                raise RepositoryError(
                    f"model {name!r} is not in {repo} (it has: {', '.join(available)})"
                )
            missing = sorted(set(pinned) - set(available[name]))
            if missing:
                raise RepositoryError(
                    f"model {name!r} has no version {missing[0]} in {repo} "
                    f"(it has: {', '.join(map(str, available[name]))})"
                )
            versions = pinned or available[name][-1:]
            models[name] = {v: load_model(repository, name, v, settings) for v in versions}
        default = settings.default_model or next(iter(models))
        if default not in models:
            raise RepositoryError(
                f"default model {default!r} is not served (serving: {', '.join(models)})"
            )
        return cls(models, default)

    def get(self, name: str | None = None, version: int | str | None = None) -> ServedModel:
        name = name or self.default
        versions = self.models.get(name)
        if versions is None:
            raise ModelNotFound(f"unknown model {name!r}; serving: {', '.join(self.models)}")
        if version in (None, ""):
            return versions[max(versions)]
        try:
            number = int(version)
        except (TypeError, ValueError):
            number = -1
        if number not in versions:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r} loaded; "
                f"loaded: {', '.join(map(str, sorted(versions)))}"
            )
        return versions[number]

    def all(self) -> list[ServedModel]:
        return [m for versions in self.models.values() for m in versions.values()]

    def replace(self, name: str, versions: dict[int, ServedModel] | None) -> None:
        """Serve `versions` of `name` from now on (None: stop serving it). The table is
        replaced, not changed: a reader holds a consistent one (service.model_control)."""
        models = dict(self.models)
        if versions:
            models[name] = dict(versions)
        else:
            models.pop(name, None)
        self.models = models
        if name == self.default and not versions and models:
            self.default = next(iter(models))  # requests that name no model go there now

    def warm_up(self, runs: int) -> None:
        for model in self.all():
            self.warm_up_model(model, runs)

    @staticmethod
    def warm_up_model(model: ServedModel, runs: int) -> None:
        """Run a model a few times, so the first request does not pay for allocations, and
        time one item (what the engine needs to decide where a call runs). Zeros, sizes left
        open taken as 1: a model that cannot run on those is served unwarmed (its calls then
        always go to the worker)."""
        signature = model.signature
        sizes = [1, max(1, min(model.max_batch_size, 8))] if signature.batched else [1]
        for size in sorted(set(sizes)):
            inputs = [
                np.zeros(
                    [size] * signature.batched + [max(d, 1) for d in tensor.dims], tensor.dtype
                )
                for tensor in signature.inputs
            ]
            for _ in range(runs):
                started = time.perf_counter()
                try:
                    model.runner(*inputs)
                except Exception as exc:  # onnxruntime's own types; an image model must run
                    if model.input_size is not None:
                        raise
                    log.warning("%s: not warmed up: zeros do not run (%s)", model.name, exc)
                    return
                if size == 1:
                    elapsed = time.perf_counter() - started
                    model.seconds_per_image = min(model.seconds_per_image, elapsed)
