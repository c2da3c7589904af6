"""`skipfold bench`'s options, declared once: type, bound, default and help per field.

`run_bench` takes a `BenchConfig` and the command line's flags are generated from it
(`common.model_flags`). Only pydantic here, so `skipfold bench --help` imports no ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from skipfold.common.machine import cpu_count
from skipfold.service.choices import LEVELS, Device, Engine, OptimizationLevel

Positive = Annotated[int, Field(ge=1)]
CLI_FIELDS = (
    "repo", "models", "device", "batch_sizes", "levels", "engines", "threads", "duration",
    "torch_reference", "compile", "cuda_graphs", "url", "concurrency", "http_model",
)  # fmt: skip


class BenchConfig(BaseModel):
    """One benchmark run."""

    model_config = ConfigDict(extra="forbid")

    repo: Path = Field(description="model repository")
    models: list[str] | None = Field(
        None, description="a,b,...", json_schema_extra={"shown_default": "every model"}
    )
    device: Device = Field("cpu", description="where ONNX Runtime runs the models")
    batch_sizes: list[Positive] = Field([1, 8, 64], min_length=1, description="a,b,...")
    levels: list[OptimizationLevel] = Field(
        list(LEVELS), min_length=1, description="ONNX Runtime graph optimization levels, a,b,..."
    )
    engines: list[Engine] = Field(
        ["onnxruntime"],
        min_length=1,
        description="a,b,...; the OpenVINO engines run each float32 model at every float format "
        "the CPU computes natively",
        json_schema_extra={"shown_default": "every one installed for --device"},
    )
    threads: int = Field(0, ge=0, description="intra-op threads (0: all cores)")
    duration: float = Field(
        15.0,
        gt=0,
        allow_inf_nan=False,
        description="seconds per batch size in-process, per concurrency over HTTP",
    )
    torch_reference: bool = Field(
        True,
        description="skip the PyTorch eager reference (skipped anyway without torch)",
        json_schema_extra={"flag": "--no-torch"},
    )
    compile: bool = Field(False, description="also time torch.compile")
    cuda_graphs: bool = Field(
        False,
        description="--device cuda: each model also through CUDA graphs (skipfold serve "
        "--cuda-graphs)",
    )
    url: str | None = Field(None, description="a running server, e.g. http://127.0.0.1:8000")
    concurrency: list[Positive] = Field([1, 8, 32], min_length=1, description="HTTP clients")
    http_model: str | None = Field(
        None,
        description="model to load over HTTP",
        json_schema_extra={"shown_default": "the first"},
    )
    seed: int = Field(0, ge=0, description="the random images' seed")

    @property
    def thread_count(self) -> int:
        return self.threads or cpu_count()
