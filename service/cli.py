"""`skipfold serve`: the inference server (FastAPI + uvicorn + ONNX Runtime; no torch).

Flags are checked as they are parsed (this module imports nothing beyond the base install, so
`--help` works anywhere); `Settings` then merges them with SKIPFOLD_* environment variables
and checks the result again before the server starts.
"""

from __future__ import annotations

import argparse
import logging

from skipfold.common import arguments
from skipfold.common.model_flags import add_field_flags, given
from skipfold.service.model_selection import parse_selection
from skipfold.service.options import ENV_PREFIX, ServeOptions

# Where the command line checks more than the field: files and folders must exist now.
PATH_CHECKS = {
    "repository": arguments.existing_folder,
    "ssl_certfile": arguments.existing_file,
    "ssl_keyfile": arguments.existing_file,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"Every flag also reads from an environment variable: {ENV_PREFIX} + the setting's name "
        "in capitals (SKIPFOLD_REPOSITORY, SKIPFOLD_PORT, SKIPFOLD_INTRA_OP_THREADS, "
        "SKIPFOLD_API_KEY, ...; the table in docs/serve.md). Flags win."
    )
    add_field_flags(parser, ServeOptions, ServeOptions.model_fields, unset=True, types=PATH_CHECKS)


def check(args: argparse.Namespace) -> None:
    """What Settings would refuse that needs no server package to see."""
    if args.models:
        parse_selection(args.models)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from skipfold.common.messages import one_line
    from skipfold.service.settings import Settings

    try:
        settings = Settings(**given(args, ServeOptions))
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
