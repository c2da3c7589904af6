"""ONNX Runtime sessions: providers, threads, optimization level, and the one call that runs.

Spinning is switched off: with several sessions (one per model version) or server threads
beside ONNX Runtime, spin-waiting intra-op threads steal the cores the next call needs
(measured: WRN-16-4 at batch 1 took 17 ms with spinning, 6.6 ms without, on 2 cores).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from skipfold.service.cuda_graphs import CudaGraphs

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
OPENVINO = "OpenVINOExecutionProvider"
# The CPU flags with which OpenVINO computes bf16 natively (and makes it its default)
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


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
    path: Path,
    providers: list[str],
    intra_op_threads: int,
    level: str,
    device: str,
    cuda_graphs: bool = False,
) -> ort.InferenceSession:
    """A session on the requested providers; refuses a silent fall-back from CUDA to CPU.

    `cuda_graphs`: the CUDA provider captures runs into CUDA graphs (service.cuda_graphs); no
    effect on the CPU."""
    chosen: list[Any] = list(providers)
    if cuda_graphs and chosen[0] != CUDA:
        log.warning("%s: no CUDA provider here, so no CUDA graphs (--cuda-graphs)", path)
    if chosen[0] == CUDA:
        # float32 models compute in float32: TF32 would round every convolution's operands to
        # 10 mantissa bits, and the fold is exact only if the arithmetic is (fp16 exports exist
        # for speed)
        options = {"use_tf32": "0"}
        chosen[0] = (CUDA, options | ({"enable_cuda_graph": "1"} if cuda_graphs else {}))
    session = ort.InferenceSession(
        str(path), session_options(intra_op_threads, level), providers=chosen
    )
    if providers[0] == CUDA and session.get_providers()[0] != CUDA:
        message = f"{path}: CUDA execution provider failed to load (no GPU visible, or CUDA libs)"
        if device == "cuda":
            raise DeviceError(message)
        log.warning("%s; serving on the CPU", message)
    return session


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def openvino_ep_precision(requested: str) -> str:
    """--inference-precision for the OpenVINO execution provider: auto -> bf16 where the CPU
    computes it natively, else fp32; fp16 (no fast path on these CPUs) and bf16 without the
    hardware are refused."""
    native = "bf16" if _cpu_flags() & _BF16_FLAGS else "fp32"
    if requested == "auto":
        return native
    if requested in ("fp32", native):
        return requested
    raise DeviceError(
        f"--inference-precision {requested}: the OpenVINO execution provider runs fp32, and bf16 "
        f"on CPUs with AVX-512 BF16 or AMX (this CPU: {native} at most)"
    )


def create_openvino_ep_session(
    path: Path, intra_op_threads: int, level: str, precision: str
) -> ort.InferenceSession:
    """A session on ONNX Runtime's OpenVINO execution provider, computing in `precision`."""
    available = ort.get_available_providers()
    if OPENVINO not in available:
        raise DeviceError(
            "--engine onnxruntime-openvino: this onnxruntime has no OpenVINO execution provider "
            f"(available: {', '.join(available)}); pip uninstall onnxruntime && pip install "
            "onnxruntime-openvino"
        )
    hint = {"fp32": "f32", "bf16": "bf16"}[precision]
    options = {
        "device_type": "CPU",
        "num_of_threads": str(intra_op_threads),
        # the EP's own `precision` option offers FP32 or ACCURACY on the CPU; bf16 is OpenVINO's
        "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint}}),
    }
    session = ort.InferenceSession(
        str(path), session_options(intra_op_threads, level), providers=[(OPENVINO, options), CPU]
    )
    if session.get_providers()[0] != OPENVINO:
        raise DeviceError(f"{path}: the OpenVINO execution provider did not load")
    return session


class Runner:
    """Runs one session: its inputs in `input_names`' order, its `output_names` out (default:
    the graph's); on CUDA, through I/O binding (one copy each way), and through CUDA graphs when
    the session was created with them."""

    def __init__(
        self,
        session: ort.InferenceSession,
        input_names: list[str] | None = None,
        output_names: list[str] | None = None,
    ) -> None:
        self.session = session
        self.input_names = input_names or [i.name for i in session.get_inputs()]
        self.output_names = output_names or [o.name for o in session.get_outputs()]
        self.on_cuda = session.get_providers()[0] == CUDA
        self.graphs: CudaGraphs | None = None
        options = session.get_provider_options().get(CUDA, {})
        if self.on_cuda and options.get("enable_cuda_graph") == "1":
            self.graphs = CudaGraphs(session, self.input_names, self.output_names)

    @property
    def input_name(self) -> str:
        return self.input_names[0]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if not self.on_cuda:
            return self.session.run(
                self.output_names, dict(zip(self.input_names, inputs, strict=True))
            )
        if self.graphs is not None:
            return self.graphs(*inputs)
        binding = self.session.io_binding()
        for name, values in zip(self.input_names, inputs, strict=True):
            binding.bind_cpu_input(name, np.ascontiguousarray(values))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
