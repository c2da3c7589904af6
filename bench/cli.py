"""`skipfold bench`: BN-folded vs SkipInit latency (and more), measured the careful way."""

from __future__ import annotations

import argparse
import shlex
import sys

from skipfold.bench.options import CLI_FIELDS, BenchConfig
from skipfold.common import arguments
from skipfold.common.model_flags import add_field_flags, given

# Where the command line checks more than the field: the repository must exist, a URL be one.
CHECKS = {"repo": arguments.existing_folder, "url": arguments.http_url}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=arguments.folder_to_write,
        required=True,
        help="folder for results.json, results.md and results.png",
    )
    # --engines' default depends on what is installed: left unset, `run` fills it
    add_field_flags(parser, BenchConfig, CLI_FIELDS, types=CHECKS, unset=True)
    for action in parser._actions:
        if action.dest == "repo":
            action.required = True


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from skipfold.bench.ratios import ratios
    from skipfold.bench.report import write_outputs
    from skipfold.bench.run import installed_engines, repo_models, run_bench

    config = BenchConfig(**given(args, BenchConfig))
    device = config.device
    engines = args.engines or [
        e for e in installed_engines() if device == "cpu" or e == "onnxruntime"
    ]
    missing = sorted(set(engines) - set(installed_engines()))
    if missing:
        install = {
            "openvino": "pip install 'skipfold[openvino]'",
            "onnxruntime-openvino": "pip uninstall onnxruntime && pip install onnxruntime-openvino",
        }
        raise ValueError(f"--engines {missing[0]}: not installed ({install[missing[0]]})")
    for engine in set(engines) - {"onnxruntime"}:
        if device != "cpu":
            raise ValueError(f"--engines {engine} runs on the CPU only, not --device {device}")
    config = config.model_copy(update={"engines": engines})
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
