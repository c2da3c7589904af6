"""ONNX Runtime sessions: providers, threads, optimization level, and the one call that runs.

Spinning is switched off: with several sessions (one per model version) or server threads
beside ONNX Runtime, spin-waiting intra-op threads steal the cores the next call needs
(measured: WRN-16-4 at batch 1 took 17 ms with spinning, 6.6 ms without, on 2 cores).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger("skipfold.service")

# skipfold.service.choices.LEVELS -> ONNX Runtime's enum
LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class DeviceError(RuntimeError):
    """The requested device cannot be used: the server must not start."""


def resolve_providers(device: str) -> list[str]:
    """Execution providers for --device cpu | cuda | auto."""
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise DeviceError(
                "--device cuda: this onnxruntime has no CUDA execution provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu"
            )
        return [CUDA, CPU]
    if device == "auto":
        if CUDA in available:
            return [CUDA, CPU]
        log.warning("--device auto: no CUDA execution provider available, serving on the CPU")
        return [CPU]
    raise ValueError(f"unknown device {device!r}; choose cpu, cuda or auto")


def session_options(intra_op_threads: int, level: str) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = LEVELS[level]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's own warnings are about graph internals
    return options


def create_session(
    path: Path, providers: list[str], intra_op_threads: int, level: str, device: str
) -> ort.InferenceSession:
    """A session on the requested providers; refuses a silent fall-back from CUDA to CPU."""
    session = ort.InferenceSession(
        str(path), session_options(intra_op_threads, level), providers=providers
    )
    if providers[0] == CUDA and session.get_providers()[0] != CUDA:
        message = f"{path}: CUDA execution provider failed to load (no GPU visible, or CUDA libs)"
        if device == "cuda":
            raise DeviceError(message)
        log.warning("%s; serving on the CPU", message)
    return session


class Runner:
    """Runs one session on uint8 images; on CUDA, through I/O binding (one copy each way)."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        self.on_cuda = session.get_providers()[0] == CUDA

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        if not self.on_cuda:
            return self.session.run(self.output_names, {self.input_name: images})
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(images))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
