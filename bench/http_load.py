"""The benchmark over HTTP: what serving adds to one request, and throughput under load."""

from __future__ import annotations

import asyncio
import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from skipfold.bench.rounds import interleaved

LOAD_BLOCK_SECONDS = 2.0  # HTTP load, then half as long in-process, and again


@dataclass
class _Load:
    """Latencies and errors of the clients, and the HTTP and in-process time spent."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    http_seconds: float = 0.0
    in_process_seconds: float = 0.0
    in_process_calls: int = 0


async def _clients(
    session: Any, target: str, body: bytes, count: int, until: float, load: _Load | None
) -> None:
    """`count` clients, each sending the next request when the last one answered."""
    import aiohttp

    headers = {"Content-Type": "image/png"}

    async def client() -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                async with session.post(target, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if load is not None:
                if ok:
                    load.latencies.append(time.perf_counter() - started)
                else:
                    load.errors += 1

    await asyncio.gather(*(client() for _ in range(count)))


async def http_load(
    url: str,
    model: str,
    body: bytes,
    concurrency: int,
    duration: float,
    run_in_process: Callable[[], Any],
) -> dict[str, Any]:
    """`concurrency` clients for `duration` seconds, in blocks that alternate with blocks of the
    same model run in-process (the server idle), so that the throughput ratio is measured under
    the same machine conditions."""
    import aiohttp

    target = f"{url.rstrip('/')}/predict?model={model}&top_k=1"
    load = _Load()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = time.perf_counter() + min(1.0, duration / 4)
        await _clients(session, target, body, concurrency, warm, None)
        block = min(LOAD_BLOCK_SECONDS, duration / 2)
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline or not load.in_process_calls:
            started = time.perf_counter()
            await _clients(session, target, body, concurrency, started + block, load)
            load.http_seconds += time.perf_counter() - started
            started = time.perf_counter()
            while time.perf_counter() - started < block / 2:  # nothing is in flight now
                run_in_process()
                load.in_process_calls += 1
            load.in_process_seconds += time.perf_counter() - started
    if not load.latencies:
        raise ConnectionError(f"no request to {target} succeeded ({load.errors} failed)")
    lat = np.array(load.latencies)
    requests_per_s = len(lat) / load.http_seconds
    in_process_per_s = load.in_process_calls / load.in_process_seconds
    return {
        "model": model,
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": load.errors,
        "seconds": load.http_seconds,
        "requests_per_s": requests_per_s,
        "p50_ms": 1000 * float(np.median(lat)),
        "p90_ms": 1000 * float(np.percentile(lat, 90)),
        "p99_ms": 1000 * float(np.percentile(lat, 99)),
        "in_process_images_per_s": in_process_per_s,
        "fraction_of_in_process": requests_per_s / in_process_per_s,
    }


class _Client:
    """One keep-alive connection (the standard library's client, the lightest at hand)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )
        self.base = parts.path.rstrip("/")
        self.errors = 0

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> None:
        self.connection.request(method, self.base + path, body, headers)
        response = self.connection.getresponse()
        response.read()
        self.errors += response.status != 200


def http_overhead(
    url: str, model: str, body: bytes, run_in_process: Callable[[], Any], duration: float
) -> dict[str, Any]:
    """One client interleaving POST /predict with the same model run in this process and with
    GET /v2/health/live, the smallest request (what HTTP costs with no model and no image).
    Machine drift hits the three alike."""
    client = _Client(url)
    steps = {
        "http": lambda: client.request(
            "POST", f"/predict?model={model}&top_k=1", body, **{"Content-Type": "image/png"}
        ),
        "in_process": run_in_process,
        "health": lambda: client.request("GET", "/v2/health/live"),
    }
    try:
        timings = interleaved(steps, duration=duration, min_rounds=5, warmup_calls=10)
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionError(f"{url}: {exc}") from None
    finally:
        client.connection.close()
    summary: dict[str, Any] = {
        "model": model,
        "rounds": len(timings["http"].latencies),
        "errors": client.errors,
    }
    for name, timing in timings.items():
        figures = timing.summary()
        summary[f"{name}_p50_ms"] = figures["p50_ms"]
        summary[f"{name}_p90_ms"] = figures["p90_ms"]
    summary["difference_ms"] = summary["http_p50_ms"] - summary["in_process_p50_ms"]
    return summary
