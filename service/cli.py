"""`skipfold serve`: the inference server (FastAPI + uvicorn + ONNX Runtime; no torch).

Flags are checked as they are parsed (this module imports nothing beyond the base install, so
`--help` works anywhere); `Settings` then merges them with SKIPFOLD_* environment variables
and checks the result again before the server starts.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from skipfold.common import arguments
from skipfold.formats.model_repository import parse_selection
from skipfold.service.choices import (
    DEVICES,
    ENGINES,
    INFERENCE_PRECISIONS,
    LEVELS,
    LOG_LEVELS,
    MODEL_CONTROL_MODES,
)

# flag: (settings field, type or choices, default shown in --help, help)
SETTINGS_FLAGS: dict[str, tuple[str, Callable[[str], Any] | tuple[str, ...], str, str]] = {
    "--repo": (
        "repository",
        arguments.existing_folder,
        "repo",
        "model repository written by skipfold export",
    ),
    "--host": ("host", str, "127.0.0.1", "bind address (0.0.0.0 in containers)"),
    "--port": ("port", arguments.port, "8000", "HTTP port (0: any free port)"),
    "--grpc-port": (
        "grpc_port",
        arguments.port,
        "8001",
        "gRPC port of the Open Inference Protocol, as Triton's (0: off)",
    ),
    "--device": ("device", DEVICES, "cpu", "auto: CUDA if available, else CPU"),
    "--cuda-graphs": (
        "cuda_graphs",
        bool,
        "off",
        "on CUDA: each batch size of up to 64 images replayed as one captured CUDA graph",
    ),
    "--threads": (
        "intra_op_threads",
        arguments.at_least(1),
        "all cores",
        "ONNX Runtime intra-op threads per call",
    ),
    "--workers": (
        "workers",
        arguments.at_least(1),
        "1",
        "ONNX Runtime calls in parallel (e.g. --workers 2 --threads 1 for throughput)",
    ),
    "--optimization-level": (
        "optimization_level",
        LEVELS,
        "all",
        "ONNX Runtime graph optimizations",
    ),
    "--engine": (
        "engine",
        ENGINES,
        "onnxruntime",
        "openvino: OpenVINO's runtime on the CPU (pip install 'skipfold[openvino]'); "
        "onnxruntime-openvino: ONNX Runtime's OpenVINO execution provider (the "
        "onnxruntime-openvino package in place of onnxruntime); each model checked against ONNX "
        "Runtime when it loads",
    ),
    "--inference-precision": (
        "inference_precision",
        INFERENCE_PRECISIONS,
        "auto: bf16 under the OpenVINO engines where the CPU has it, else fp32",
        "float format the engine computes in",
    ),
    "--engine-tolerance": (
        "engine_tolerance",
        arguments.at_least(0, float),
        "0.05",
        "the OpenVINO engines: largest median class-probability difference from ONNX Runtime "
        "on the load check's images",
    ),
    "--engine-min-agreement": (
        "engine_min_agreement",
        arguments.fraction,
        "0.9",
        "the OpenVINO engines: least top-1 agreement with ONNX Runtime on the load check's images",
    ),
    "--models": (
        "models",
        str,
        "every model, latest version",
        "models to serve, optionally pinned: 'bn,skipinit:1:2'",
    ),
    "--model-control": (
        "model_control",
        MODEL_CONTROL_MODES,
        "none",
        "none: the models loaded at start; poll: new versions in the repository served once "
        "warmed up, removed ones retired; explicit: POST /v2/repository/models/NAME/load|unload",
    ),
    "--poll-interval": (
        "poll_interval_s",
        arguments.at_least(0.001, float),
        "15",
        "--model-control poll: seconds between repository scans",
    ),
    "--default-model": (
        "default_model",
        str,
        "the first",
        "model used when a request names none",
    ),
    "--max-batch-size": (
        "max_batch_size",
        arguments.at_least(0),
        "0 = off",
        "dynamic batching: images per call",
    ),
    "--max-queue-delay-ms": (
        "max_queue_delay_ms",
        arguments.at_least(0, float),
        "2",
        "dynamic batching: how long the first request waits for others",
    ),
    "--inline-max-ms": (
        "inline_max_ms",
        arguments.at_least(0, float),
        "10; 0 = never",
        "calls expected to take at most this long run on the event loop when nothing else runs",
    ),
    "--max-body-bytes": (
        "max_body_bytes",
        arguments.at_least(1),
        "10 MiB",
        "request body limit",
    ),
    "--max-image-pixels": (
        "max_image_pixels",
        arguments.at_least(1),
        "4,096 x the largest model input, at most 40,000,000",
        "pixels per image, checked from the header before decoding",
    ),
    "--decode-pixels-in-flight": (
        "decode_pixels_in_flight",
        arguments.at_least(1),
        "4 images at the pixel limit",
        "decoded pixels in worker threads at once; more images wait",
    ),
    "--header-timeout": (
        "header_timeout_s",
        arguments.at_least(0.001, float),
        "10",
        "seconds for the request line and headers, from the request's first byte",
    ),
    "--body-timeout": (
        "body_timeout_s",
        arguments.at_least(0.001, float),
        "60",
        "seconds for the whole body, from the end of the headers",
    ),
    "--keep-alive-timeout": (
        "keep_alive_timeout_s",
        arguments.at_least(0.001, float),
        "5",
        "seconds an idle kept-alive connection stays open",
    ),
    "--max-connections": (
        "max_connections",
        arguments.at_least(1),
        "4096",
        "open connections and requests at once; beyond it, 503",
    ),
    "--api-key": ("api_key", str, "none", "require this key in the X-API-Key header"),
    "--cors-origins": (
        "cors_origins",
        str,
        "none",
        "comma-separated origins browsers may call the API from (CORS); '*': any",
    ),
    "--ssl-certfile": (
        "ssl_certfile",
        arguments.existing_file,
        "none: plain HTTP",
        "TLS certificate chain (PEM), for HTTPS and gRPC",
    ),
    "--ssl-keyfile": ("ssl_keyfile", arguments.existing_file, "none", "TLS private key (PEM)"),
    "--shutdown-delay": (
        "shutdown_delay_s",
        arguments.at_least(0, float),
        "0",
        "seconds to stay up, not ready, after SIGTERM",
    ),
    "--log-level": ("log_level", LOG_LEVELS, "info", "server log level"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every flag also reads from an environment variable: SKIPFOLD_ + the setting's name in "
        "capitals (SKIPFOLD_REPOSITORY, SKIPFOLD_PORT, SKIPFOLD_DEVICE, SKIPFOLD_API_KEY, ...). "
        "Flags win."
    )
    for flag, (field, kind, default, help_text) in SETTINGS_FLAGS.items():
        help_text = f"{help_text} (default: {default})".replace("%", "%%")
        if isinstance(kind, tuple):
            parser.add_argument(flag, dest=field, choices=kind, help=help_text)
        elif kind is bool:  # a switch; None when absent, so that the environment can set it
            parser.add_argument(flag, dest=field, action="store_const", const=True, help=help_text)
        else:
            parser.add_argument(flag, dest=field, type=kind, help=help_text, metavar=field.upper())


def check(args: argparse.Namespace) -> None:
    """What Settings would refuse that needs no server package to see."""
    if args.models:
        parse_selection(args.models)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from skipfold.common.arguments import one_line
    from skipfold.service.settings import Settings

    overrides = {
        field: getattr(args, field)
        for field, *_ in SETTINGS_FLAGS.values()
        if getattr(args, field) is not None
    }
    try:
        settings = Settings(**overrides)
        settings.pinned_versions()
    except ValidationError as exc:
        raise ValueError(f"invalid settings: {one_line(exc)}") from None
    if not settings.repository.is_dir():
        raise ValueError(
            f"model repository {settings.repository} does not exist or is not a folder (create "
            "one with 'skipfold export runs/NAME --repo REPO', or run 'skipfold demo')"
        )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from skipfold.service.server import serve

    return serve(settings)
