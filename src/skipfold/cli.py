"""The `skipfold` command: one entry point whose subcommands live in the package they belong to.

Only the chosen subcommand's module is imported, and those modules import nothing beyond the
base install, so `skipfold --help` and every `skipfold COMMAND --help` are instant and work in
any install. Running a command checks first that its extra is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from skipfold import __version__
from skipfold.common.arguments import ArgumentParser
from skipfold.common.messages import one_line

# The import names each extra of pyproject.toml provides (what a command's extra must bring).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("onnxruntime", "fastapi", "uvicorn", "pydantic_settings", "prometheus_client"),
    "train": ("torch", "safetensors", "matplotlib"),
    "export": ("torch", "safetensors", "onnx", "onnxscript", "onnx_ir", "onnxruntime"),
    "import": ("onnx", "onnxruntime"),
}


@dataclass(frozen=True)
class Subcommand:
    module: str  # has add_arguments(parser), run(args) and maybe check(args)
    help: str
    extra: str


SUBCOMMANDS: dict[str, Subcommand] = {
    "probe": Subcommand(
        "skipfold.models.cli",
        "signal propagation at initialization: skip, branch and output variance per block",
        "train",
    ),
    "train": Subcommand(
        "skipfold.training.cli", "train a BN or SkipInit Wide-ResNet into a run folder", "train"
    ),
    "evaluate": Subcommand(
        "skipfold.training.evaluate", "test accuracy and loss of a trained run", "train"
    ),
    "export": Subcommand(
        "skipfold.export.cli",
        "fold every BatchNorm and write a verified ONNX model into a Triton-layout repository",
        "export",
    ),
    "import": Subcommand(
        "skipfold.export.import_cli",
        "bring an image classifier trained elsewhere (ONNX): fold its BatchNorms, verify, and "
        "add it to a model repository",
        "import",
    ),
    "serve": Subcommand(
        "skipfold.service.cli",
        "serve a model repository over HTTP (FastAPI + ONNX Runtime, no torch)",
        "serve",
    ),
    "reproduce": Subcommand(
        "skipfold.reproduce.cli",
        "one of the two papers' training claims: a grid of runs and a report beside it",
        "train",
    ),
    "bench": Subcommand(
        "skipfold.bench.cli",
        "latency and throughput: folded BN vs SkipInit vs unfolded, in-process and over HTTP",
        "serve",
    ),
    "demo": Subcommand(
        "skipfold.demo",
        "train, export, time and serve BN and SkipInit WRNs: one command",
        "all",
    ),
}


def missing_extra(extra: str) -> str | None:
    """The first import name of `extra` that is not installed, or None."""
    names = EXTRAS[extra] if extra != "all" else tuple(dict.fromkeys(sum(EXTRAS.values(), ())))
    return next((name for name in names if importlib.util.find_spec(name) is None), None)


def _no_check(args: argparse.Namespace) -> None:
    return None


def build_parser(selected: str | None = None) -> ArgumentParser:
    """The full parser for `selected`; the other subcommands are listed but not imported."""
    parser = ArgumentParser(
        prog="skipfold",
        description="Train, fold and serve BatchNorm and SkipInit Wide-ResNets.",
        epilog="Run 'skipfold COMMAND --help' for a command's options. "
        "Set SKIPFOLD_DEBUG=1 to see tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"skipfold {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help)
        if name == selected:
            module = importlib.import_module(command.module)
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run, check=getattr(module, "check", _no_check))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected if selected in SUBCOMMANDS else None).parse_args(argv)
    command = SUBCOMMANDS[args.command]
    try:
        args.check(args)  # what no single argument shows: before any work, before the extra
        missing = missing_extra(command.extra)
        if missing:
            print(
                f"skipfold {args.command}: needs {missing}, which is not installed: "
                f"pip install 'skipfold[{command.extra}]'",
                file=sys.stderr,
            )
            return 2
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"skipfold {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        # Bad input is the user's to fix: one line, no traceback (unless debugging).
        if os.environ.get("SKIPFOLD_DEBUG"):
            raise
        message = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
        print(f"skipfold {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
