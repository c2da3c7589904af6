"""The `skipfold` command: one entry point whose subcommands live in the package they belong to.

Only the chosen subcommand's module is imported, so `skipfold --help` is instant and
`skipfold serve` never imports torch (the API image has no torch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from skipfold import __version__

# name -> (module with add_arguments(parser) and run(args), one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "probe": (
        "models.cli",
        "signal propagation at initialization: skip, branch and output variance per block",
    ),
    "train": ("training.cli", "train a BN or SkipInit Wide-ResNet into a run folder"),
    "evaluate": ("training.evaluate", "test accuracy and loss of a trained run"),
    "export": (
        "export.cli",
        "fold every BatchNorm and write a verified ONNX model into a Triton-layout repository",
    ),
    "serve": ("service.cli", "serve a model repository over HTTP (FastAPI + ONNX Runtime)"),
    "bench": ("service.bench_cli", "latency and throughput: folded BN vs SkipInit vs unfolded"),
    "demo": ("skipfold.demo", "train, export, time and serve BN and SkipInit WRNs: one command"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The full parser for `selected`; the other subcommands are listed but not imported."""
    parser = argparse.ArgumentParser(
        prog="skipfold",
        description="Train, fold and serve BatchNorm and SkipInit Wide-ResNets.",
        epilog="Run 'skipfold COMMAND --help' for a command's options. "
        "Set SKIPFOLD_DEBUG=1 to see tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"skipfold {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected if selected in SUBCOMMANDS else None).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"skipfold {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        # Bad input is the user's to fix: one line, no traceback (unless debugging).
        if os.environ.get("SKIPFOLD_DEBUG"):
            raise
        print(f"skipfold {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
