"""`skipfold bench`: BN-folded vs SkipInit latency (and more), measured the careful way."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _csv(kind: type) -> object:
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list: {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, required=True, help="model repository")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.{json,md,png}")
    parser.add_argument("--models", type=_csv(str), help="a,b,... (default: every model)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--batch-sizes", type=_csv(int), default=[1, 8, 64], help="default 1,8,64")
    parser.add_argument(
        "--levels",
        type=_csv(str),
        default=["disabled", "basic", "extended", "all"],
        help="ONNX Runtime graph optimization levels (default: all four)",
    )
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds per batch size in-process, per concurrency over HTTP (default 15)",
    )
    parser.add_argument(
        "--no-torch",
        dest="torch_reference",
        action="store_false",
        help="skip the PyTorch eager reference",
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--concurrency", type=_csv(int), default=[1, 8, 32], help="HTTP clients (default 1,8,32)"
    )
    parser.add_argument("--http-model", help="model to load over HTTP (default: the first)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from service.bench import BenchConfig, run_bench
    from service.bench_report import ratios, write_outputs
    from service.runtime import LEVELS

    unknown = [level for level in args.levels if level not in LEVELS]
    if unknown:
        raise ValueError(f"unknown level(s) {', '.join(unknown)}; choose from {', '.join(LEVELS)}")
    config = BenchConfig(
        repo=args.repo,
        out=args.out,
        models=args.models,
        device=args.device,
        batch_sizes=args.batch_sizes,
        levels=args.levels,
        duration=args.duration,
        threads=args.threads,
        torch_reference=args.torch_reference,
        compile=args.compile,
        url=args.url,
        concurrency=args.concurrency,
        http_model=args.http_model,
    )
    results = run_bench(config, lambda **kw: tqdm(file=sys.stderr, **kw))
    results["ratios"] = ratios(results, results["models"])
    command = "skipfold bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    print(write_outputs(results, args.out, command))
    print(f"wrote {args.out}/results.json, results.md, results.png")
    return 0
