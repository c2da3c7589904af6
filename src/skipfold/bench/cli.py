"""`skipfold bench`: BN-folded vs SkipInit latency (and more), measured the careful way."""

from __future__ import annotations

import argparse
import shlex
import sys

from skipfold.common import arguments
from skipfold.service.choices import DEVICES, ENGINES, LEVELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", type=arguments.existing_folder, required=True, help="model repository"
    )
    parser.add_argument(
        "--out",
        type=arguments.folder_to_write,
        required=True,
        help="folder for results.json, results.md and results.png",
    )
    parser.add_argument("--models", type=arguments.csv(str), help="a,b,... (default: every model)")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument(
        "--batch-sizes", type=arguments.csv(arguments.at_least(1)), default=[1, 8, 64]
    )
    parser.add_argument(
        "--levels",
        type=arguments.csv(arguments.choice(LEVELS)),
        default=list(LEVELS),
        help=f"ONNX Runtime graph optimization levels, of {', '.join(LEVELS)}",
    )
    parser.add_argument(
        "--engines",
        type=arguments.csv(arguments.choice(ENGINES)),
        help=f"of {', '.join(ENGINES)} (default: every one installed for --device; the OpenVINO "
        "engines run each float32 model at every float format the CPU computes natively)",
    )
    parser.add_argument(
        "--threads", type=arguments.at_least(0), default=0, help="intra-op threads (0: all cores)"
    )
    parser.add_argument(
        "--duration",
        type=arguments.positive(float),
        default=15.0,
        help="seconds per batch size in-process, per concurrency over HTTP",
    )
    parser.add_argument(
        "--no-torch",
        dest="torch_reference",
        action="store_false",
        help="skip the PyTorch eager reference (skipped anyway without torch)",
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="--device cuda: each model also through CUDA graphs (skipfold serve --cuda-graphs)",
    )
    parser.add_argument(
        "--url", type=arguments.http_url, help="a running server, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--concurrency",
        type=arguments.csv(arguments.at_least(1)),
        default=[1, 8, 32],
        help="HTTP clients",
    )
    parser.add_argument("--http-model", help="model to load over HTTP (default: the first)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from skipfold.bench.ratios import ratios
    from skipfold.bench.report import write_outputs
    from skipfold.bench.run import BenchConfig, installed_engines, repo_models, run_bench

    engines = args.engines or [
        e for e in installed_engines() if args.device == "cpu" or e == "onnxruntime"
    ]
    missing = sorted(set(engines) - set(installed_engines()))
    if missing:
        install = {
            "openvino": "pip install 'skipfold[openvino]'",
            "onnxruntime-openvino": "pip uninstall onnxruntime && pip install onnxruntime-openvino",
        }
        raise ValueError(f"--engines {missing[0]}: not installed ({install[missing[0]]})")
    for engine in set(engines) - {"onnxruntime"}:
        if args.device != "cpu":
            raise ValueError(f"--engines {engine} runs on the CPU only, not --device {args.device}")

    config = BenchConfig(
        repo=args.repo,
        models=args.models,
        device=args.device,
        batch_sizes=args.batch_sizes,
        levels=args.levels,
        engines=engines,
        duration=args.duration,
        threads=args.threads,
        torch_reference=args.torch_reference,
        compile=args.compile,
        cuda_graphs=args.cuda_graphs,
        url=args.url,
        concurrency=args.concurrency,
        http_model=args.http_model,
    )
    repo_models(config)  # unknown or missing models: refused before anything is measured
    results = run_bench(config, lambda **kw: tqdm(file=sys.stderr, **kw))
    results["ratios"] = ratios(results, results["models"])
    command = "skipfold bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    written = write_outputs(results, args.out, command)
    print((args.out / "results.md").read_text())
    print(f"wrote {', '.join(str(p) for p in written)}")
    if len(written) < 3:
        print("no results.png: matplotlib is not installed (pip install 'skipfold[plot]')")
    return 0
