"""`skipfold serve`'s settings, declared once: type, bound, default, help and flag per field.

The flags (`service.cli`), the SKIPFOLD_* environment variables (`service.settings.Settings`,
built on this model) and the settings table in docs/serve.md are all generated from here. Only
pydantic (the base install), so `skipfold serve --help` works anywhere. Defaults are the ones
measured best on a 2-core CPU (docs/results.md).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from skipfold.common.machine import cpu_count
from skipfold.service.choices import (
    Device,
    Engine,
    InferencePrecision,
    LogLevel,
    ModelControlMode,
    OptimizationLevel,
)

ENV_PREFIX = "SKIPFOLD_"


def _flag(flag: str, **extra: str) -> dict[str, str]:
    return {"flag": flag, **extra}


class ServeOptions(BaseModel):
    """Every knob of the server."""

    repository: Path = Field(
        Path("repo"), description="model repository written by skipfold export",
        json_schema_extra=_flag("--repo"),
    )  # fmt: skip
    host: str = Field("127.0.0.1", description="bind address (0.0.0.0 in containers)")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0: any free port)")
    grpc_port: int = Field(
        8001, ge=0, le=65535,
        description="gRPC port of the Open Inference Protocol, as Triton's (0: off)",
    )  # fmt: skip
    device: Device = Field("cpu", description="auto: CUDA if available, else CPU")
    cuda_graphs: bool = Field(
        False,
        description="on CUDA: each batch size of up to 64 images replayed as one captured CUDA "
        "graph (ONNX Runtime's enable_cuda_graph): one launch instead of one per kernel",
    )
    intra_op_threads: int = Field(
        default_factory=cpu_count, ge=1, description="ONNX Runtime intra-op threads per call",
        json_schema_extra=_flag("--threads", shown_default="all cores"),
    )  # fmt: skip
    workers: int = Field(
        1, ge=1,
        description="ONNX Runtime calls in parallel, each with --threads threads: 1 x all cores "
        "is the lowest latency, N x cores/N the most throughput under load",
    )  # fmt: skip
    optimization_level: OptimizationLevel = Field(
        "all", description="ONNX Runtime graph optimizations"
    )
    engine: Engine = Field(
        "onnxruntime",
        description="onnxruntime: every device, exactly the exported graph; openvino: OpenVINO's "
        "runtime on the CPU (pip install 'skipfold[openvino]'); onnxruntime-openvino: ONNX "
        "Runtime's OpenVINO execution provider (the onnxruntime-openvino package in place of "
        "onnxruntime); the OpenVINO engines' models are checked against ONNX Runtime at load",
    )
    inference_precision: InferencePrecision = Field(
        "auto",
        description="the float format the engine computes in (bf16: the OpenVINO engines; "
        "fp16: openvino only); auto: bf16 under the OpenVINO engines where the CPU has it, "
        "else fp32",
    )
    engine_tolerance: float = Field(
        0.05, ge=0,
        description="the OpenVINO engines: largest median class-probability difference from "
        "ONNX Runtime on the load check's images before a model is refused",
    )  # fmt: skip
    engine_min_agreement: float = Field(
        0.9, ge=0, le=1,
        description="the OpenVINO engines: least top-1 agreement with ONNX Runtime on the load "
        "check's images",
    )  # fmt: skip
    models: str = Field(
        "",
        description="comma-separated models to serve, each optionally pinned to versions: "
        "'bn,skipinit:1:2'",
        json_schema_extra={"shown_default": "every model, latest version"},
    )
    default_model: str | None = Field(
        None, description="model used when a request names none",
        json_schema_extra={"shown_default": "the first"},
    )  # fmt: skip
    model_control: ModelControlMode = Field(
        "none",
        description="none: the models loaded at start; poll: new versions in the repository "
        "served once warmed up, removed ones retired; explicit: POST "
        "/v2/repository/models/NAME/load|unload",
    )
    poll_interval_s: float = Field(
        15.0, gt=0, description="--model-control poll: seconds between repository scans",
        json_schema_extra=_flag("--poll-interval"),
    )  # fmt: skip
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="request body limit",
        json_schema_extra={"shown_default": "10 MiB"},
    )  # fmt: skip
    max_image_pixels: int | None = Field(
        None, ge=1, description="pixels per image, checked from the header before decoding",
        json_schema_extra={"shown_default": "4,096 x the largest model input, at most 40,000,000"},
    )  # fmt: skip
    decode_pixels_in_flight: int | None = Field(
        None, ge=1, description="decoded pixels in worker threads at once; more images wait",
        json_schema_extra={"shown_default": "4 images at the pixel limit"},
    )  # fmt: skip
    max_files_per_request: int = Field(64, ge=1, description="POST /predict: images per request")
    top_k: int = Field(5, ge=1, description="POST /predict: classes answered when not asked")
    api_key: SecretStr | None = Field(
        None, description="require this key in the --api-key-header header",
        json_schema_extra={"shown_default": "none"},
    )  # fmt: skip
    api_key_header: str = Field("X-API-Key", description="the header that carries the API key")
    cors_origins: str = Field(
        "",
        description="comma-separated origins browsers may call the API from (CORS), e.g. "
        "'https://app.example.com'; '*': any",
        json_schema_extra={"shown_default": "none (off)"},
    )
    ssl_certfile: Path | None = Field(
        None, description="TLS certificate chain (PEM): HTTPS, and TLS on the gRPC port",
        json_schema_extra={"shown_default": "none: plain HTTP"},
    )  # fmt: skip
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM)")
    max_batch_size: int = Field(
        0, ge=0, description="dynamic batching: items per call, for every model with a batch "
        "dimension (a model's config.pbtxt may ask for it with dynamic_batching { })",
        json_schema_extra={"shown_default": "0 = off"},
    )  # fmt: skip
    max_queue_delay_ms: float = Field(
        2.0, ge=0, description="dynamic batching: how long the first request waits for others"
    )
    inline_max_ms: float = Field(
        10.0, ge=0,
        description="a call expected to take at most this long runs on the event loop when no "
        "other call is running, saving two thread hand-offs (0: always the worker thread)",
    )  # fmt: skip
    warmup_runs: int = Field(3, ge=0, description="inference calls per model before ready")
    header_timeout_s: float = Field(
        10.0, gt=0, description="seconds for the request line and headers (else 408)",
        json_schema_extra=_flag("--header-timeout"),
    )  # fmt: skip
    body_timeout_s: float = Field(
        60.0, gt=0, description="seconds for the body, from the end of the headers (else 408)",
        json_schema_extra=_flag("--body-timeout"),
    )  # fmt: skip
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="seconds an idle kept-alive connection stays open",
        json_schema_extra=_flag("--keep-alive-timeout"),
    )  # fmt: skip
    max_connections: int = Field(
        4096, ge=1, description="open connections and requests at once; beyond it, 503"
    )
    shutdown_delay_s: float = Field(
        0.0, ge=0, description="seconds to stay up, not ready, after SIGTERM",
        json_schema_extra=_flag("--shutdown-delay"),
    )  # fmt: skip
    log_level: LogLevel = Field("info", description="server log level")

    @field_validator("api_key")
    @classmethod
    def _empty_key_means_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @model_validator(mode="after")
    def _engine_fits(self) -> ServeOptions:
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
    def _tls_pair(self) -> ServeOptions:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both, or neither")
        for path in (self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self
