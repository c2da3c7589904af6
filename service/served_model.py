"""One version of one model as the server holds it: what it runs and what it says of itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skipfold.formats.model_card import ModelCard
from skipfold.formats.model_config import PROBABILITIES
from skipfold.service.engine_check import EngineCheck
from skipfold.service.runtime import Runner
from skipfold.service.signature import Signature, TensorSpec


@dataclass
class ServedModel:
    """One version of one model, loaded and ready to run."""

    name: str
    version: int
    path: Path
    runner: Runner  # or an OpenVINORunner: the same interface
    classes: list[str]  # empty: not a classifier, or its classes unnamed
    signature: Signature  # what it takes and gives, as the protocol serves it
    input_size: tuple[int, int] | None  # an image classifier's (height, width); None: not one
    card: ModelCard | None = None  # None: not exported by skipfold
    metadata: dict[str, str] = field(default_factory=dict)  # the graph's metadata_props, raw
    # One image's run time, measured in the warm-up (the fastest run); inf until measured.
    seconds_per_image: float = float("inf")
    engine: str = "onnxruntime"
    inference_precision: str = "fp32"  # what the engine computes float layers in
    engine_check: EngineCheck | None = None  # another engine or precision vs ONNX Runtime
    retired: bool = False  # unloaded or replaced: finishes its requests, takes no batch queue

    @property
    def max_batch_size(self) -> int:
        return self.signature.max_batch_size

    @property
    def resize_shorter(self) -> int | None:
        """The model card's resize before the center crop (imported models); None: straight."""
        return self.card.resize_shorter if self.card else None

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.signature.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.signature.outputs]

    def probabilities(self, outputs: list[np.ndarray]) -> np.ndarray:
        """An image classifier's class probabilities from its outputs: its `probabilities`
        output where it has one (skipfold's exports and imports), else the softmax of the first
        (logits, as most exporters write them)."""
        if PROBABILITIES in self.output_names:
            return outputs[self.output_names.index(PROBABILITIES)]
        logits = outputs[0].astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def describe(self) -> dict[str, Any]:
        card = self.card
        return {
            "name": self.name,
            "version": self.version,
            "variant": card.variant if card else None,
            "depth": card.depth if card and card.depth else None,  # imported: not a WRN
            "width": card.width if card and card.width else None,
            "architecture": card.architecture if card and card.architecture else None,
            "activation": card.activation if card and card.activation else None,
            "folded": card.folded if card else None,
            "precision": card.precision if card else None,
            # each image and its mirror, averaged: twice the work per image
            "test_flip": card.test_flip if card else None,
            "classes": self.classes,
            # an image classifier's (what /predict and the page serve); None: any other model
            "input_shape": self.signature.shape(self.signature.inputs[0])
            if self.input_size
            else None,
            "inputs": [_tensor(self.signature, t) for t in self.signature.inputs],
            "outputs": [_tensor(self.signature, t) for t in self.signature.outputs],
            "max_batch_size": self.max_batch_size,
            "test_accuracy": card.test_accuracy if card else None,
            # int8: the accuracy measured at export, against its float32 graph
            "accuracy_check": card.accuracy_check.model_dump()
            if card and card.accuracy_check
            else None,
            "resize_shorter": self.resize_shorter,
            "imported_from": card.imported_from.model_dump()
            if card and card.imported_from
            else None,
            "engine": self.engine,
            "inference_precision": self.inference_precision,
            "engine_check": self.engine_check.as_dict() if self.engine_check else None,
            "execution_providers": self.runner.providers,
            "cuda_graphs": getattr(self.runner, "graphs", None) is not None,
        }


def _tensor(signature: Signature, tensor: TensorSpec) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": signature.shape(tensor)}
