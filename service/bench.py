"""`skipfold bench`: the latency comparison, measured so that machine noise cannot decide it.

Method: every variant (model x optimization level, plus PyTorch eager) is warmed up, then all
variants of one batch size run in short blocks, interleaved (A B C, C A B, ...: a fresh random
order each round, so no variant always follows the same neighbour), until the duration is
spent, so drift and noise hit all of them alike. PyTorch's OpenMP threads are told not to
spin-wait (OMP_WAIT_POLICY=PASSIVE, unless set), as ONNX Runtime's are: a spinning pool would
slow whichever variant runs next. Reported:
median, p90, p99 of single-call latency, and the spread of the per-round medians (p25-p75),
with throughput, FLOPs per image and the implied GFLOP/s beside the machine's measured float32
matrix-multiply rate (the roof). Over HTTP (`--url`): the serving overhead, measured by one
client that interleaves POST /predict, the same model run in-process and GET /v2/health/live
in a fresh random order each round; then N concurrent clients for a fixed time, in blocks that
alternate with the model run in-process, for the throughput ratio.

PyTorch is optional (the API image has none): without it the reference rows are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.registry import CONFIG_FILE, MODEL_FILE, model_versions
from service.runtime import create_session, resolve_providers

BLOCK_SECONDS = 0.03  # one variant's turn in a round
LOAD_BLOCK_SECONDS = 2.0  # HTTP load, then half as long in-process, and again


@dataclass
class BenchConfig:
    repo: Path
    out: Path
    models: list[str] | None = None
    device: str = "cpu"
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64])
    levels: list[str] = field(default_factory=lambda: ["disabled", "basic", "extended", "all"])
    duration: float = 15.0  # seconds per batch size (in-process) or per concurrency (HTTP)
    threads: int = 0  # 0: all cores
    torch_reference: bool = True
    compile: bool = False
    url: str | None = None
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32])
    http_model: str | None = None
    seed: int = 0


@dataclass
class Variant:
    """Something that maps a uint8 batch to outputs, and how it is labelled."""

    model: str
    engine: str  # "onnxruntime" or "torch-eager" / "torch-compile"
    provider: str
    level: str
    flops_per_image: int
    run: Callable[[np.ndarray], Any]
    latencies: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)


def _threads(config: BenchConfig) -> int:
    return config.threads or len(os.sched_getaffinity(0))


def _repo_models(config: BenchConfig) -> dict[str, Path]:
    """name -> path of the latest version's model.onnx."""
    if not config.repo.is_dir():
        raise FileNotFoundError(f"model repository {config.repo} does not exist")
    found = {}
    for model_dir in sorted(config.repo.iterdir()):
        if model_dir.name.startswith(".") or not (model_dir / CONFIG_FILE).is_file():
            continue
        versions = model_versions(model_dir)
        if versions:
            found[model_dir.name] = model_dir / str(versions[-1]) / MODEL_FILE
    if config.models:
        missing = [m for m in config.models if m not in found]
        if missing:
            raise ValueError(
                f"not in {config.repo}: {', '.join(missing)} (it has {', '.join(found)})"
            )
        found = {m: found[m] for m in config.models}
    if not found:
        raise ValueError(f"{config.repo} holds no models; export some with skipfold export")
    return found


def _metadata(path: Path) -> dict[str, str]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def _onnx_variants(config: BenchConfig, models: dict[str, Path]) -> list[Variant]:
    providers = resolve_providers(config.device)
    variants = []
    for name, path in models.items():
        flops = int(_metadata(path).get("flops_per_image", 0))
        for level in config.levels:
            session = create_session(path, providers, _threads(config), level, config.device)
            provider = session.get_providers()[0].removesuffix("ExecutionProvider")

            def run(images: np.ndarray, session: ort.InferenceSession = session) -> Any:
                return session.run(None, {"images": images})

            variants.append(Variant(name, "onnxruntime", provider, level, flops, run))
    return variants


def _torch_variants(config: BenchConfig, models: dict[str, Path]) -> tuple[list[Variant], str]:
    """The same networks in PyTorch (random weights: latency does not depend on their values)."""
    try:
        import torch

        from export.fold import fold_model
        from export.onnx_graph import ImageClassifier
        from models import build_model
    except ImportError as exc:
        return [], f"PyTorch reference skipped: {exc}"
    torch.set_num_threads(_threads(config))
    device = "cuda" if config.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
    variants = []
    for name, path in models.items():
        meta = _metadata(path)
        try:
            network = build_model(
                meta["variant"],
                int(meta["depth"]),
                int(meta["width"]),
                len(json.loads(meta["classes"])),
            ).eval()
        except (KeyError, ValueError):
            continue  # not a skipfold model: nothing to rebuild
        if meta.get("folded") == "true":
            network = fold_model(network)
        wrapped = (
            ImageClassifier(
                network,
                json.loads(meta["mean"]),
                json.loads(meta["std"]),
                meta.get("standardize") == "per-image",
            )
            .eval()
            .to(device)
        )
        engines = [("torch-eager", wrapped)]
        if config.compile:
            engines.append(("torch-compile", torch.compile(wrapped)))
        for engine, module in engines:

            def run(images: np.ndarray, module: Any = module) -> Any:
                with torch.inference_mode():
                    out = module(torch.from_numpy(images).to(device))
                    if device == "cuda":
                        torch.cuda.synchronize()
                    return out

            variants.append(
                Variant(name, engine, device.upper(), "-", int(meta.get("flops_per_image", 0)), run)
            )
    return variants, ""


def _measure(
    variants: list[Variant],
    images: np.ndarray,
    duration: float,
    progress: Any,
    rng: np.random.Generator,
) -> None:
    """Interleaved rounds until `duration` seconds are spent; see the module docstring."""
    for v in variants:
        v.latencies, v.round_medians = [], []
    calls = []
    for v in variants:  # warm-up, and the number of calls that fills one block
        for _ in range(3):
            v.run(images)
        started = time.perf_counter()
        v.run(images)
        calls.append(max(1, int(BLOCK_SECONDS / max(time.perf_counter() - started, 1e-6))))
    deadline = time.perf_counter() + duration
    round_index = 0
    while time.perf_counter() < deadline or round_index < 3:
        for i in rng.permutation(len(variants)):
            v, block = variants[i], []
            for _ in range(calls[i]):
                started = time.perf_counter()
                v.run(images)
                block.append(time.perf_counter() - started)
            v.latencies += block
            v.round_medians.append(statistics.median(block))
        round_index += 1
        progress.update(1)


def _summary(v: Variant, batch: int, roof_gflops: float) -> dict[str, Any]:
    lat = np.array(v.latencies)
    p50 = float(np.median(lat))
    rounds = np.array(v.round_medians)
    gflops = v.flops_per_image * batch / p50 / 1e9 if v.flops_per_image else None
    return {
        "model": v.model,
        "engine": v.engine,
        "provider": v.provider,
        "level": v.level,
        "batch": batch,
        "calls": len(lat),
        "rounds": len(rounds),
        "p50_ms": 1000 * p50,
        "p90_ms": 1000 * float(np.percentile(lat, 90)),
        "p99_ms": 1000 * float(np.percentile(lat, 99)),
        "round_p25_ms": 1000 * float(np.percentile(rounds, 25)),
        "round_p75_ms": 1000 * float(np.percentile(rounds, 75)),
        "images_per_s": batch / float(lat.mean()),
        "flops_per_image": v.flops_per_image,
        "gflops": gflops,
        "roof_fraction": gflops / roof_gflops if gflops and roof_gflops else None,
    }


def matmul_roof(threads: int, size: int = 2048, repeats: int = 5) -> tuple[float, str]:
    """The machine's float32 matrix-multiply rate (GFLOP/s) with the same thread budget."""
    try:
        import torch

        torch.set_num_threads(threads)
        a, b = torch.randn(size, size), torch.randn(size, size)
        matmul, how = (lambda: a @ b), f"torch {size}x{size} float32 matmul"
    except ImportError:
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        matmul, how = (lambda: a @ a), f"numpy {size}x{size} float32 matmul"
    matmul()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul()
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9, how


async def _http_load(
    url: str,
    model: str,
    body: bytes,
    concurrency: int,
    duration: float,
    run_in_process: Callable[[], Any],
) -> dict[str, Any]:
    """`concurrency` clients, each sending the next request when the last one answered, in
    blocks that alternate with blocks of the same model run in-process (the server idle), so
    that the throughput ratio is measured under the same machine conditions."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    target = f"{url.rstrip('/')}/predict?model={model}&top_k=1"
    headers = {"Content-Type": "image/png"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    async with session.post(target, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if record:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        warm = time.perf_counter() + min(1.0, duration / 4)
        await asyncio.gather(*(client(warm, False) for _ in range(concurrency)))
        block = min(LOAD_BLOCK_SECONDS, duration / 2)
        http_seconds = in_process_seconds = 0.0
        in_process_calls = 0
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline or not in_process_calls:
            started = time.perf_counter()
            await asyncio.gather(*(client(started + block, True) for _ in range(concurrency)))
            http_seconds += time.perf_counter() - started
            started = time.perf_counter()
            while time.perf_counter() - started < block / 2:  # nothing is in flight now
                run_in_process()
                in_process_calls += 1
            in_process_seconds += time.perf_counter() - started
    if not latencies:
        raise ConnectionError(f"no request to {target} succeeded ({errors} failed)")
    lat = np.array(latencies)
    requests_per_s = len(latencies) / http_seconds
    in_process_per_s = in_process_calls / in_process_seconds
    return {
        "model": model,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": http_seconds,
        "requests_per_s": requests_per_s,
        "p50_ms": 1000 * float(np.median(lat)),
        "p90_ms": 1000 * float(np.percentile(lat, 90)),
        "p99_ms": 1000 * float(np.percentile(lat, 99)),
        "in_process_images_per_s": in_process_per_s,
        "fraction_of_in_process": requests_per_s / in_process_per_s,
    }


def _http_overhead(
    url: str, model: str, body: bytes, run_in_process: Callable[[], Any], duration: float
) -> dict[str, Any]:
    """One client (the standard library's, the lightest at hand), interleaving POST /predict
    with the same model run in this process and with GET /v2/health/live, the smallest request
    (what HTTP costs with no model and no image). Machine drift hits the three alike."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    base = parts.path.rstrip("/")
    headers = {"Content-Type": "image/png"}
    errors = 0

    def predict() -> None:
        nonlocal errors
        connection.request("POST", f"{base}/predict?model={model}&top_k=1", body, headers)
        response = connection.getresponse()
        response.read()
        errors += response.status != 200

    def health() -> None:
        nonlocal errors
        connection.request("GET", f"{base}/v2/health/live")
        response = connection.getresponse()
        response.read()
        errors += response.status != 200

    steps = {"http": predict, "in_process": run_in_process, "health": health}
    latencies: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    rng = np.random.default_rng(0)
    try:
        for _ in range(10):
            for step in steps.values():
                step()
        errors = 0
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline or len(latencies["http"]) < 5:
            for i in rng.permutation(len(order)):
                started = time.perf_counter()
                steps[order[i]]()
                latencies[order[i]].append(time.perf_counter() - started)
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionError(f"{url}: {exc}") from None
    finally:
        connection.close()
    summary: dict[str, Any] = {"model": model, "rounds": len(latencies["http"]), "errors": errors}
    for name, values in latencies.items():
        summary[f"{name}_p50_ms"] = 1000 * statistics.median(values)
        summary[f"{name}_p90_ms"] = 1000 * float(np.percentile(values, 90))
    summary["difference_ms"] = summary["http_p50_ms"] - summary["in_process_p50_ms"]
    return summary


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores available, {platform.system()}"


def run_bench(config: BenchConfig, progress_factory: Callable[..., Any]) -> dict[str, Any]:
    from skipfold import __version__

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch starts its pool

    models = _repo_models(config)
    threads = _threads(config)
    roof, roof_how = matmul_roof(threads)
    variants = _onnx_variants(config, models)
    note = ""
    if config.torch_reference:
        torch_variants, note = _torch_variants(config, models)
        variants += torch_variants
    rng = np.random.default_rng(config.seed)
    rows = []
    total_rounds = None
    with progress_factory(total=total_rounds, desc="in-process", unit="round") as progress:
        for batch in config.batch_sizes:
            progress.set_postfix(batch=batch)
            images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
            _measure(variants, images, config.duration, progress, rng)
            rows += [_summary(v, batch, roof) for v in variants]
    http_rows = []
    overhead = None
    if config.url:
        http_model = config.http_model or next(iter(models))
        if http_model not in models:
            raise ValueError(f"--http-model {http_model!r} is not among {', '.join(models)}")
        import io

        from PIL import Image

        image = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image[0]).save(buffer, "PNG")
        session = create_session(
            models[http_model], resolve_providers(config.device), threads, "all", config.device
        )
        with progress_factory(total=1, desc="HTTP overhead", unit="run") as bar:
            overhead = _http_overhead(
                config.url,
                http_model,
                buffer.getvalue(),
                lambda: session.run(None, {"images": image}),
                config.duration,
            )
            bar.update(1)
        overhead["provider"] = session.get_providers()[0].removesuffix("ExecutionProvider")
        with progress_factory(total=len(config.concurrency), desc="HTTP", unit="level") as bar:
            for concurrency in config.concurrency:
                http_rows.append(
                    asyncio.run(
                        _http_load(
                            config.url,
                            http_model,
                            buffer.getvalue(),
                            concurrency,
                            config.duration,
                            lambda: session.run(None, {"images": image}),
                        )
                    )
                )
                bar.update(1)
    described = {}
    for name, path in models.items():
        meta = _metadata(path)
        described[name] = {
            k: meta.get(k)
            for k in ("variant", "depth", "width", "folded", "flops_per_image", "parameters")
        }
    return {
        "skipfold_version": __version__,
        "models": described,
        "onnxruntime_version": ort.__version__,
        "machine": machine_description(),
        "threads": threads,
        "device": config.device,
        "duration_s": config.duration,
        "roof_gflops": roof,
        "roof_method": roof_how,
        "notes": [n for n in [note] if n],
        "in_process": rows,
        "http_overhead": overhead,
        "http": http_rows,
    }
