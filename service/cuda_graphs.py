"""CUDA graphs for ONNX Runtime's CUDA provider: one captured graph per batch size, replayed.

A small network at a small batch spends most of its GPU time launching kernels one after another;
a CUDA graph launches all of them at once. ONNX Runtime captures a run into a graph when the
session is created with `enable_cuda_graph` (runtime.create_session), and a graph reads and
writes fixed device addresses. So each batch size gets its own input and output buffers on the
device, bound once, and its own graph (the `gpu_graph_id` run option): a call copies the images
into that input buffer in place, replays, and copies the outputs back. ONNX Runtime captures a
graph id's run on its first call (running it uncaptured first as often as it needs to allocate),
and keeps its graphs per calling thread: a size is captured once for each thread that runs it
(the warm-up's, the worker's, the event loop's).

Batches of more than MAX_CAPTURED_BATCH images run without a graph (`gpu_graph_id` -1): launches
are a small part of their time, and every captured size keeps its buffers and its graph's memory.
Every call through CUDA graphs, of every model, takes one lock: ONNX Runtime captures in CUDA's
global capture mode, where a CUDA call from another thread during a capture breaks it (a model
loaded and warmed up while another serves, or two workers), and a size's buffers are shared.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

MAX_CAPTURED_BATCH = 64
_CUDA_GRAPHS_LOCK = threading.Lock()  # one for the process: see the module docstring
_NO_GRAPH = "-1"
# ONNX Runtime's type strings -> NumPy, for the output buffers
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class CudaGraphError(RuntimeError):
    """The model cannot run under CUDA graphs (the message says why)."""


@dataclass
class _Graph:
    binding: ort.IOBinding
    images: ort.OrtValue
    outputs: list[ort.OrtValue]  # bound; held here so that they live as long as the graph
    options: ort.RunOptions


class CudaGraphs:
    """Runs a session created with enable_cuda_graph: uint8 images in, NumPy outputs out."""

    def __init__(self, session: ort.InferenceSession, input_name: str, output_names: list[str]):
        self.session = session
        self.input_name = input_name
        self.output_names = output_names
        self.output_shapes: list[tuple[int, ...]] = []
        self.output_types: list[type] = []
        for output in session.get_outputs():
            rest = output.shape[1:]
            if not all(isinstance(d, int) for d in rest) or output.type not in _DTYPES:
                raise CudaGraphError(
                    f"CUDA graphs need outputs of a fixed shape after the batch and a plain "
                    f"type; output {output.name!r} is {output.type} {output.shape}"
                )
            self.output_shapes.append(tuple(rest))
            self.output_types.append(_DTYPES[output.type])
        self._graphs: dict[int, _Graph] = {}

    @property
    def captured_sizes(self) -> list[int]:
        return sorted(self._graphs)

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        images = np.ascontiguousarray(images)
        with _CUDA_GRAPHS_LOCK:
            if len(images) > MAX_CAPTURED_BATCH:
                return self._uncaptured(images)
            graph = self._graphs.get(len(images))
            if graph is None:
                graph = self._graphs[len(images)] = self._new_graph(images)
            else:
                graph.images.update_inplace(images)
            self.session.run_with_iobinding(graph.binding, graph.options)
            return graph.binding.copy_outputs_to_cpu()

    def _new_graph(self, images: np.ndarray) -> _Graph:
        batch = len(images)
        binding = self.session.io_binding()
        device = ort.OrtValue.ortvalue_from_numpy(images, "cuda", 0)
        binding.bind_ortvalue_input(self.input_name, device)
        outputs = []
        described = zip(self.output_names, self.output_shapes, self.output_types, strict=True)
        for name, shape, dtype in described:
            value = ort.OrtValue.ortvalue_from_shape_and_type([batch, *shape], dtype, "cuda", 0)
            binding.bind_ortvalue_output(name, value)
            outputs.append(value)
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(batch))
        return _Graph(binding, device, outputs, options)

    def _uncaptured(self, images: np.ndarray) -> list[np.ndarray]:
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, images)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", _NO_GRAPH)
        self.session.run_with_iobinding(binding, options)
        return binding.copy_outputs_to_cpu()
