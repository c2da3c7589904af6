"""OpenVINO's own runtime as a second engine (`--engine openvino`, the [openvino] extra).

On CPUs with AMX or AVX-512 BF16 OpenVINO computes float graphs in bf16 and quantized (QDQ)
graphs with its int8 kernels, 2-3x faster than ONNX Runtime's float32 on WRN-16-4 at batch 1
(docs/results.md). It reads the same model.onnx files; the server checks each model it compiles
against ONNX Runtime before serving it (service.engine_check).
"""

from __future__ import annotations

import functools
import queue
from pathlib import Path
from typing import Any

import numpy as np

from skipfold.service.runtime import DeviceError

# --inference-precision -> OpenVINO's INFERENCE_PRECISION_HINT
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# OpenVINO's OPTIMIZATION_CAPABILITIES entry that says the CPU computes a precision natively
_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16"}


@functools.cache
def core() -> Any:
    """The one OpenVINO Core of the process; DeviceError if OpenVINO is not installed."""
    try:
        import openvino
    except ImportError:
        raise DeviceError(
            "--engine openvino: OpenVINO is not installed (pip install 'skipfold[openvino]')"
        ) from None
    return openvino.Core()


def version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


def cpu_precisions() -> list[str]:
    """The float formats this CPU computes natively, as --inference-precision names them."""
    capabilities = set(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return [name for name, flag in _CAPABILITY.items() if flag in capabilities]


def resolve_precision(requested: str, quantized: bool = False) -> str:
    """auto -> bf16 where the CPU has it, else fp32 (fp32 for a quantized graph, whose float
    parts are few: measured faster, and nearer ONNX Runtime); a format the CPU lacks is
    refused."""
    available = cpu_precisions()
    if requested == "auto":
        return "bf16" if "bf16" in available and not quantized else "fp32"
    if requested not in available:
        raise DeviceError(
            f"--inference-precision {requested}: this CPU has no native {requested} "
            f"(OpenVINO offers: {', '.join(available)})"
        )
    return requested


class OpenVINORunner:
    """Runs one compiled model; the same interface as runtime.Runner.

    An infer request serves one call at a time, so calls take one from a pool of idle ones
    (made when none is idle: as many as calls ever ran at once, warmed up by the first)."""

    def __init__(
        self,
        path: Path,
        threads: int,
        precision: str,
        input_names: list[str] | None = None,
        output_names: list[str] | None = None,
    ) -> None:
        compiled = core().compile_model(
            str(path),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": _HINTS[precision],
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": threads,
            },
        )
        self.compiled = compiled
        self.precision = precision
        self.input_names = input_names or [i.get_any_name() for i in compiled.inputs]
        self.input_name = self.input_names[0]
        self.output_names = output_names or [o.get_any_name() for o in compiled.outputs]
        self._ports = [compiled.output(name) for name in self.output_names]
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @property
    def providers(self) -> list[str]:
        return [f"OpenVINO {version()} CPU {self.precision}"]

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            # copies the outputs out of the request
            results = request.infer(dict(zip(self.input_names, inputs, strict=True)))
            return [np.asarray(results[port]) for port in self._ports]
        finally:
            self._idle.put(request)
