"""`skipfold probe`: signal propagation at initialization, as a table, JSON and a plot."""

from __future__ import annotations

import argparse
import math
from typing import Any

from skipfold.common import arguments
from skipfold.models.spec import (
    ALPHA_VARIANTS,
    VARIANT_NAMES,
    ModelSpec,
    check_alpha,
    check_depth,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="bn", choices=VARIANT_NAMES)
    parser.add_argument(
        "--depth", type=arguments.field_type(ModelSpec, "depth"), default=100, help="6N+4"
    )
    parser.add_argument(
        "--width", type=arguments.field_type(ModelSpec, "width"), default=1, help="width factor k"
    )
    parser.add_argument(
        "--batch", type=arguments.at_least(2), default=256, help="N(0,1) images (at least 2)"
    )
    parser.add_argument("--seed", type=arguments.at_least(0), default=0, help="weights and inputs")
    parser.add_argument(
        "--alpha-init",
        type=arguments.field_type(ModelSpec, "alpha_init"),
        help=f"initial alpha of {', '.join(ALPHA_VARIANTS)} (default 0; the paper's ablations "
        "use 1)",
    )
    parser.add_argument(
        "--compare", action="store_true", help="probe every variant: one table, one plot"
    )
    parser.add_argument(
        "--json",
        type=arguments.file_to_write,
        metavar="PATH",
        help="write the measurements as JSON",
    )
    parser.add_argument(
        "--plot",
        type=arguments.file_to_write,
        metavar="PATH",
        help="write a PNG: log variance against block",
    )


def _json_ready(value: Any) -> Any:
    """Variances that overflowed even float64 (unnormalized nets of ~2000 layers) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def check(args: argparse.Namespace) -> None:
    check_depth(args.depth)  # the probe measures Wide-ResNets
    if not args.compare:  # with --compare, alpha_init goes to the variants that have one
        check_alpha(args.variant, args.alpha_init)


def run(args: argparse.Namespace) -> int:
    from skipfold.common.io import write_json_atomic
    from skipfold.models.probe import probe, probe_all
    from skipfold.models.probe_report import format_blocks, format_comparison, plot

    common: dict[str, Any] = {"batch": args.batch, "seed": args.seed, "progress": True}
    if args.alpha_init is not None:
        common["alpha_init"] = args.alpha_init
    if args.compare:
        results = probe_all(args.depth, args.width, **common)
        print(format_comparison(results))
        document: Any = {
            "depth": args.depth,
            "width": args.width,
            "batch": args.batch,
            "seed": args.seed,
            "variants": results,
        }
    else:
        results = [probe(args.variant, args.depth, args.width, **common)]
        print(format_blocks(results[0]))
        document = results[0]
    if args.json:
        write_json_atomic(args.json, _json_ready(document))
        print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0
