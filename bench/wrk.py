"""wrk, the C load generator, driven for one-connection latency when it is installed: a Python
client costs about as much per request as the server does, wrk next to nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skipfold.bench.rounds import interleaved

# wrk cannot hand a script its raw samples (its Debian build answers latency[i] with i), so each
# run reports the 1st to 99th percentile; pooling those, each weighted by the run's requests,
# gives the percentiles over several runs to within a percentile step.
_SCRIPT = """
wrk.method = os.getenv("SKIPFOLD_WRK_METHOD")
local path = os.getenv("SKIPFOLD_WRK_BODY")
if path ~= nil and path ~= "" then
  local f = assert(io.open(path, "rb")); wrk.body = f:read("*a"); f:close()
  wrk.headers["Content-Type"] = os.getenv("SKIPFOLD_WRK_CONTENT_TYPE")
end
function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.timeout + e.status
  local line = {"SKIPFOLD-WRK", summary.requests, failed}
  for p = 1, 99 do line[#line + 1] = latency:percentile(p) end
  io.write(table.concat(line, " "), "\\n")
end
"""


def installed() -> str | None:
    """wrk's path, or None."""
    return shutil.which("wrk")


@dataclass
class WrkLatencies:
    """Several one-connection wrk runs of one request, pooled."""

    quantiles_us: list[np.ndarray] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    errors: int = 0

    def percentile(self, q: float) -> float:
        """The q-th percentile in milliseconds over every run."""
        values = np.concatenate(self.quantiles_us)
        weights = np.concatenate([np.full(99, n / 99) for n in self.requests])
        order = np.argsort(values)
        cumulative = np.cumsum(weights[order])
        index = int(np.searchsorted(cumulative, q / 100 * cumulative[-1]))
        return float(values[order][min(index, len(values) - 1)]) / 1000


class Wrk:
    """One request (method, URL, body) that wrk sends back to back on one connection."""

    def __init__(
        self, wrk: str, url: str, method: str = "GET", body: bytes = b"", content_type: str = ""
    ) -> None:
        self.wrk, self.url = wrk, url
        self.directory = tempfile.TemporaryDirectory(prefix="skipfold-wrk-")
        root = Path(self.directory.name)
        (root / "request.lua").write_text(_SCRIPT)
        self.environment = os.environ | {"SKIPFOLD_WRK_METHOD": method, "SKIPFOLD_WRK_BODY": ""}
        if body:
            (root / "body").write_bytes(body)
            self.environment |= {
                "SKIPFOLD_WRK_BODY": str(root / "body"),
                "SKIPFOLD_WRK_CONTENT_TYPE": content_type,
            }
        self.latencies = WrkLatencies()

    def run(self, seconds: int = 1, record: bool = True) -> None:
        """wrk for `seconds` (whole seconds: its resolution)."""
        command = [self.wrk, "-t1", "-c1", f"-d{seconds}s", "-s", "request.lua", self.url]
        result = subprocess.run(
            command, cwd=self.directory.name, env=self.environment, capture_output=True,
            text=True, timeout=seconds + 30, check=False,
        )  # fmt: skip
        lines = [line for line in result.stdout.splitlines() if line.startswith("SKIPFOLD-WRK ")]
        if result.returncode or not lines:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise ConnectionError(f"wrk {self.url}: {message[-1] if message else 'no output'}")
        fields = lines[-1].split()[1:]
        requests, errors = int(fields[0]), int(fields[1])
        if not requests:
            raise ConnectionError(f"wrk {self.url}: no request answered in {seconds} s")
        if record:
            self.latencies.requests.append(requests)
            self.latencies.errors += errors
            self.latencies.quantiles_us.append(np.array(fields[2:], dtype=float))

    def close(self) -> None:
        self.directory.cleanup()


def wrk_overhead(
    wrk: str, url: str, model: str, body: bytes, run_in_process: Callable[[], Any], duration: float
) -> dict[str, Any]:
    """What `http_overhead` measures, with wrk as the client: one-second runs of POST /predict
    and of GET /v2/health/live and one-second blocks of the model in-process, in interleaved
    rounds (`bench.rounds`) until `duration` is spent (at least three rounds)."""
    base = url.rstrip("/")
    predict = Wrk(wrk, f"{base}/predict?model={model}&top_k=1", "POST", body, "image/png")
    health = Wrk(wrk, f"{base}/v2/health/live")
    steps = {"http": predict.run, "health": health.run, "in_process": run_in_process}
    try:
        predict.run(record=False)
        timings = interleaved(
            steps, duration=duration, block_seconds={"in_process": 1.0}, warmup_calls=0
        )
    finally:
        predict.close()
        health.close()
    in_process = timings["in_process"].summary()
    summary: dict[str, Any] = {
        "rounds": len(timings["http"].latencies),
        "requests": sum(predict.latencies.requests) + sum(health.latencies.requests),
        "errors": predict.latencies.errors + health.latencies.errors,
        "in_process_p50_ms": in_process["p50_ms"],
        "in_process_p90_ms": in_process["p90_ms"],
    }
    for name, client in (("http", predict), ("health", health)):
        summary[f"{name}_p50_ms"] = client.latencies.percentile(50)
        summary[f"{name}_p90_ms"] = client.latencies.percentile(90)
    summary["difference_ms"] = summary["http_p50_ms"] - summary["in_process_p50_ms"]
    return summary
