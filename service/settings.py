"""Every knob of the server in one place: CLI flags and SKIPFOLD_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from skipfold.formats.model_repository import parse_selection
from skipfold.service.choices import (
    Device,
    Engine,
    InferencePrecision,
    LogLevel,
    ModelControlMode,
    OptimizationLevel,
)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    """Defaults are the ones measured best on a 2-core CPU (docs/results.md)."""

    model_config = SettingsConfigDict(env_prefix="SKIPFOLD_", extra="ignore")

    repository: Path = Field(Path("repo"), description="model repository (skipfold export)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(
        8001,
        ge=0,
        le=65535,
        description="the Open Inference Protocol over gRPC (Triton's port); 0 turns it off",
    )
    device: Device = "cpu"
    cuda_graphs: bool = Field(
        False,
        description="on CUDA: replay each batch size of up to 64 images as one captured CUDA "
        "graph (ONNX Runtime's enable_cuda_graph): one launch instead of one per kernel",
    )
    intra_op_threads: int = Field(
        default_factory=_cpu_count, ge=1, description="ONNX Runtime threads per inference call"
    )
    workers: int = Field(
        1,
        ge=1,
        description="ONNX Runtime calls run in parallel, each with intra_op_threads threads: "
        "1 x all cores is the lowest latency, N x cores/N the most throughput under load",
    )
    optimization_level: OptimizationLevel = "all"
    engine: Engine = Field(
        "onnxruntime",
        description="onnxruntime: every device, exactly the exported graph; openvino (OpenVINO's "
        "runtime) and onnxruntime-openvino (ONNX Runtime's OpenVINO execution provider): CPU "
        "only, bf16 on CPUs that have it (2-3x faster there), checked against ONNX Runtime at load",
    )
    inference_precision: InferencePrecision = Field(
        "auto",
        description="the float format the engine computes in (bf16: the OpenVINO engines; fp16: "
        "openvino only); auto: bf16 where the CPU has it under either, else fp32",
    )
    engine_tolerance: float = Field(
        0.05,
        ge=0,
        description="the OpenVINO engines: largest median class-probability difference from "
        "ONNX Runtime on the check images before a model is refused",
    )
    engine_min_agreement: float = Field(
        0.9,
        ge=0,
        le=1,
        description="the OpenVINO engines: least top-1 agreement with ONNX Runtime on the "
        "check images",
    )
    models: str = Field(
        "",
        description="comma-separated model names to serve, each optionally pinned "
        "to versions: 'bn,skipinit:1:2' (default: every model, latest version)",
    )
    default_model: str | None = None
    model_control: ModelControlMode = Field(
        "none",
        description="none: the models loaded at start; poll: rescan the repository every "
        "poll_interval_s, serve new versions once warmed up; explicit: load and unload through "
        "the repository API (POST /v2/repository/...)",
    )
    poll_interval_s: float = Field(15.0, gt=0, description="model_control poll: seconds")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_image_pixels: int | None = Field(
        None,
        ge=1,
        description="pixels per image, checked from its header (default: 4,096 times the "
        "largest model input, at most 40,000,000: 2048x2048 for 32x32 models)",
    )
    decode_pixels_in_flight: int | None = Field(
        None,
        ge=1,
        description="decoded pixels in worker threads at once; more images wait (default: 4 "
        "images at the pixel limit)",
    )
    max_files_per_request: int = Field(64, ge=1)
    top_k: int = Field(5, ge=1)
    api_key: SecretStr | None = None
    api_key_header: str = "X-API-Key"
    cors_origins: str = Field(
        "",
        description="comma-separated origins browsers may call the API from (CORS), e.g. "
        "'https://app.example.com'; '*' for any; empty: none (off)",
    )
    ssl_certfile: Path | None = Field(
        None, description="TLS certificate chain (PEM): HTTPS, and TLS on the gRPC port"
    )
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM)")
    max_batch_size: int = Field(0, ge=0, description="dynamic batching: 0 = off")
    max_queue_delay_ms: float = Field(2.0, ge=0)
    inline_max_ms: float = Field(
        10.0,
        ge=0,
        description="a call expected to take at most this long runs on the event loop when no "
        "other call is running, saving two thread hand-offs (0 = always the worker thread)",
    )
    warmup_runs: int = Field(3, ge=0)
    header_timeout_s: float = Field(
        10.0, gt=0, description="request line and headers must arrive within this (else 408)"
    )
    body_timeout_s: float = Field(
        60.0, gt=0, description="the body must arrive within this after the headers (else 408)"
    )
    keep_alive_timeout_s: float = Field(5.0, gt=0, description="idle kept-alive connections")
    max_connections: int = Field(
        4096, ge=1, description="open connections and requests at once; beyond it, 503"
    )
    shutdown_delay_s: float = Field(
        0.0, ge=0, description="after SIGTERM: keep serving this long while not ready"
    )
    log_level: LogLevel = "info"

    @field_validator("api_key")
    @classmethod
    def _empty_key_means_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @model_validator(mode="after")
    def _engine_fits(self) -> Settings:
        if self.engine != "onnxruntime" and self.device != "cpu":
            raise ValueError(f"engine {self.engine} runs on the CPU only, not device {self.device}")
        if self.cuda_graphs and self.device == "cpu":
            raise ValueError("cuda_graphs needs device cuda (or auto, on a machine with a GPU)")
        if self.engine == "onnxruntime" and self.inference_precision not in ("auto", "fp32"):
            raise ValueError(
                f"inference_precision {self.inference_precision} needs an OpenVINO engine "
                "(ONNX Runtime computes a graph in the precision it was exported in)"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both, or neither")
        for path in (self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self

    def allowed_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def pinned_versions(self) -> dict[str, list[int]]:
        """`models` parsed: name -> pinned versions (an empty list means the latest)."""
        return parse_selection(self.models)
