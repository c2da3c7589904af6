"""From a torch network to one self-contained ONNX graph that takes decoded images.

The graph's input is what an image decoder yields, uint8 [N, H, W, 3]; the cast, the transpose
to NCHW and the run's standardization happen inside it, so a client sends pixels and nothing
about preprocessing can drift between training and serving. Outputs: `logits` and
`probabilities`, float32 [N, classes].
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Sequence

import onnx
import torch
from torch import nn

from skipfold.export.options import MIN_OPSET
from skipfold.formats.model_config import INPUT_NAME, OUTPUT_NAMES


class ImageClassifier(nn.Module):
    """uint8 [N, H, W, 3] -> (logits, probabilities), standardizing as training did.

    `dtype` float16: the network computes in float16 (an fp16 export for CUDA); standardization
    and the softmax stay float32: per-image standardization squares 0..255 pixel sums past
    float16's 65,504, and the outputs keep their type for every client.
    """

    def __init__(
        self,
        network: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        per_image: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        # a float16 copy: the float32 network stays as it was (the exporter verifies with it)
        self.network = network if dtype == torch.float32 else copy.deepcopy(network).to(dtype)
        self.dtype = dtype
        self.per_image = per_image
        mean64 = torch.tensor(mean, dtype=torch.float64)
        std64 = torch.tensor(std, dtype=torch.float64)
        # (x / 255 - mean) / std as one multiply-add per pixel.
        self.register_buffer("scale", (1.0 / (255.0 * std64)).float().view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean64 / std64).float().view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).float()
        if self.per_image:  # training.augment.standardize(per_image=True), op for op
            centred = x - x.mean((1, 2, 3), keepdim=True)
            floor = 255.0 / math.sqrt(x[0].numel())
            x = centred / centred.square().mean((1, 2, 3), keepdim=True).sqrt().clamp_min(floor)
        else:
            x = x * self.scale + self.shift
        logits = self.network(x.to(self.dtype)).float()
        return logits, torch.softmax(logits, dim=1)


def export_onnx(
    classifier: ImageClassifier, input_size: Sequence[int], opset: int = MIN_OPSET
) -> onnx.ModelProto:
    """Export with a dynamic batch dimension, constants folded, nothing else rewritten.

    The torch exporter's own optimizer would fuse conv + BN; it is switched off so that an
    unfolded export really keeps every BatchNormalization, and only constant folding and
    dead-code removal run (onnxscript / onnx_ir passes), for folded and unfolded alike.
    """
    import onnx_ir as ir
    import onnx_ir.passes.common as passes
    import onnxscript.optimizer

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be {MIN_OPSET} or later, got {opset}")
    height, width = input_size
    example = torch.zeros(2, height, width, 3, dtype=torch.uint8)  # batch >= 2 for a dynamic dim
    # The exporter warns about every torchvision op it cannot register; none is used here.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            classifier.eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes={INPUT_NAME: {0: "batch"}},
            optimize=False,
            verbose=False,
        )
    model = program.model
    onnxscript.optimizer.fold_constants(model)
    ir.passes.Sequential(
        passes.RemoveUnusedNodesPass(),
        passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        passes.DeduplicateInitializersPass(),
        passes.CommonSubexpressionEliminationPass(),
        passes.RemoveUnusedNodesPass(),
    )(model)
    proto = ir.serde.serialize_model(model)
    _strip_exporter_annotations(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _strip_exporter_annotations(model: onnx.ModelProto) -> None:
    """Drop per-node traces of the exporting Python process (module paths, FX node text)."""
    graph = model.graph
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        del value.metadata_props[:]
    del graph.metadata_props[:]
    graph.doc_string = ""
    model.doc_string = ""
