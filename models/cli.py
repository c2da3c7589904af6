"""`skipfold probe`: signal propagation at initialization, as a table, JSON and a plot."""

from __future__ import annotations

import argparse
import math
from typing import Any

from models.wide_resnet import VARIANTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="bn", choices=list(VARIANTS), help="default: bn")
    parser.add_argument("--depth", type=int, default=100, help="6N+4 (default: 100)")
    parser.add_argument("--width", type=int, default=1, help="width factor k (default: 1)")
    parser.add_argument("--batch", type=int, default=256, help="N(0,1) images (default: 256)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs (default: 0)")
    parser.add_argument(
        "--alpha-init",
        type=float,
        default=None,
        help="initial alpha of the skipinit variants (default 0; the paper's ablations use 1)",
    )
    parser.add_argument(
        "--compare", action="store_true", help="probe every variant: one table, one plot"
    )
    parser.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG: log variance against block")


def _json_ready(value: Any) -> Any:
    """Variances that overflowed even float64 (unnormalized nets of ~2000 layers) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    from models.probe import probe, probe_all
    from models.probe_report import format_blocks, format_comparison, plot
    from skipfold.io import write_json_atomic

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
