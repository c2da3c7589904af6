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
    inputs: list[ort.OrtValue]
    outputs: list[ort.OrtValue]  # bound; held here so that they live as long as the graph
    options: ort.RunOptions


class CudaGraphs:
    """Runs a session created with enable_cuda_graph: NumPy inputs in, NumPy outputs out."""

    def __init__(
        self, session: ort.InferenceSession, input_names: list[str], output_names: list[str]
    ) -> None:
        self.session = session
        self.input_names = input_names
        self.output_names = output_names
        self.output_shapes: list[tuple[int, ...]] = []
        self.output_types: list[type] = []
        graph_outputs = {o.name: o for o in session.get_outputs()}
        for output in (graph_outputs[name] for name in output_names):
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

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        inputs = tuple(np.ascontiguousarray(values) for values in inputs)
        batch = len(inputs[0])
        with _CUDA_GRAPHS_LOCK:
            graph = self._graphs.get(batch)
            if batch > MAX_CAPTURED_BATCH or (
                graph is not None and [v.shape() for v in graph.inputs] != [i.shape for i in inputs]
            ):  # past the captured sizes, or a shape the graph was not captured for
                return self._uncaptured(inputs)
            if graph is None:
                graph = self._graphs[batch] = self._new_graph(inputs)
            else:
                for device, values in zip(graph.inputs, inputs, strict=True):
                    device.update_inplace(values)
            self.session.run_with_iobinding(graph.binding, graph.options)
            return graph.binding.copy_outputs_to_cpu()

    def _new_graph(self, inputs: tuple[np.ndarray, ...]) -> _Graph:
        batch = len(inputs[0])
        binding = self.session.io_binding()
        devices = []
        for name, values in zip(self.input_names, inputs, strict=True):
            device = ort.OrtValue.ortvalue_from_numpy(values, "cuda", 0)
            binding.bind_ortvalue_input(name, device)
            devices.append(device)
        outputs = []
        described = zip(self.output_names, self.output_shapes, self.output_types, strict=True)
        for name, shape, dtype in described:
            value = ort.OrtValue.ortvalue_from_shape_and_type([batch, *shape], dtype, "cuda", 0)
            binding.bind_ortvalue_output(name, value)
            outputs.append(value)
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(batch))
        return _Graph(binding, devices, outputs, options)

    def _uncaptured(self, inputs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        binding = self.session.io_binding()
        for name, values in zip(self.input_names, inputs, strict=True):
            binding.bind_cpu_input(name, values)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", _NO_GRAPH)
        self.session.run_with_iobinding(binding, options)
        return binding.copy_outputs_to_cpu()
