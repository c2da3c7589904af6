"""The server's enumerated settings, as types: read by Settings, the flags and the benchmark.

Only `typing` here, so that `skipfold serve --help` and `skipfold bench --help` need nothing
beyond the base install.
"""

from typing import Literal, get_args

Device = Literal["cpu", "cuda", "auto"]
OptimizationLevel = Literal["disabled", "basic", "extended", "all"]
LogLevel = Literal["debug", "info", "warning", "error"]
# Who runs the graph: ONNX Runtime (the [serve] install), OpenVINO's own runtime ([openvino]), or
# ONNX Runtime through its OpenVINO execution provider (the onnxruntime-openvino package in place
# of onnxruntime).
Engine = Literal["onnxruntime", "openvino", "onnxruntime-openvino"]
# The float format the engine computes in. auto: the engine's fastest that it keeps accurate on
# this device (OpenVINO: bf16 on CPUs with AMX or AVX-512 BF16, else fp32; ONNX Runtime: fp32).
InferencePrecision = Literal["auto", "fp32", "bf16", "fp16"]

# Triton's model control modes (service.model_control)
ModelControlMode = Literal["none", "poll", "explicit"]

DEVICES: tuple[str, ...] = get_args(Device)
LEVELS: tuple[str, ...] = get_args(OptimizationLevel)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
ENGINES: tuple[str, ...] = get_args(Engine)
INFERENCE_PRECISIONS: tuple[str, ...] = get_args(InferencePrecision)
MODEL_CONTROL_MODES: tuple[str, ...] = get_args(ModelControlMode)
