"""`skipfold serve`: the inference server (FastAPI + uvicorn + ONNX Runtime; no torch)."""

from __future__ import annotations

import argparse
import logging

SETTINGS_FLAGS = {
    # flag: (settings field, type, help)
    "--repo": ("repository", str, "model repository written by skipfold export (default repo/)"),
    "--host": ("host", str, "bind address (default 127.0.0.1; 0.0.0.0 in containers)"),
    "--port": ("port", int, "default 8000"),
    "--device": ("device", str, "cpu (default), cuda, or auto (CUDA if available, else CPU)"),
    "--threads": ("intra_op_threads", int, "ONNX Runtime intra-op threads (default: all cores)"),
    "--workers": (
        "workers",
        int,
        "ONNX Runtime calls in parallel (default 1; e.g. --workers 2 --threads 1 for throughput)",
    ),
    "--optimization-level": ("optimization_level", str, "disabled, basic, extended, all (default)"),
    "--models": ("models", str, "models to serve, optionally pinned: 'bn,skipinit:1:2'"),
    "--default-model": ("default_model", str, "model used when a request names none"),
    "--max-batch-size": ("max_batch_size", int, "dynamic batching: images per call (0 = off)"),
    "--max-queue-delay-ms": ("max_queue_delay_ms", float, "dynamic batching: wait (default 2)"),
    "--inline-max-ms": (
        "inline_max_ms",
        float,
        "calls expected to take at most this long run on the event loop when the worker is idle "
        "(default 10; 0 = never)",
    ),
    "--max-body-bytes": ("max_body_bytes", int, "request body limit (default 10 MB)"),
    "--max-image-pixels": ("max_image_pixels", int, "decoded pixel limit per image"),
    "--api-key": ("api_key", str, "require this key in the X-API-Key header (or SKIPFOLD_API_KEY)"),
    "--shutdown-delay": ("shutdown_delay_s", float, "seconds to stay up not-ready after SIGTERM"),
    "--log-level": ("log_level", str, "debug, info (default), warning, error"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every flag also reads from an environment variable: SKIPFOLD_ + the setting's name in "
        "capitals (SKIPFOLD_REPOSITORY, SKIPFOLD_PORT, SKIPFOLD_DEVICE, SKIPFOLD_API_KEY, ...). "
        "Flags win."
    )
    for flag, (field, kind, help_text) in SETTINGS_FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, help=help_text)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from service.server import serve
    from service.settings import Settings

    overrides = {
        field: getattr(args, field)
        for field, _, _ in SETTINGS_FLAGS.values()
        if getattr(args, field) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid settings: {problems}") from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(settings)
