"""Prometheus metrics: requests by model and status, latency by stage, batch sizes, in flight.

Each app gets its own registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "skipfold_requests",
            "Inference requests by model, endpoint and HTTP status",
            ["model", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "skipfold_request_latency_seconds",
            "Latency of inference requests by stage: queue (waiting for a batch or a worker), "
            "inference (ONNX Runtime), total (request in to response out)",
            ["model", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "skipfold_batch_size",
            "Images per ONNX Runtime call",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.calls = Counter(
            "skipfold_inference_calls",
            "ONNX Runtime calls by model and where they ran: the event loop (a short call "
            "with nothing else to do) or the worker thread",
            ["model", "runs_on"],
            registry=self.registry,
        )
        self.loads = Counter(
            "skipfold_model_loads",
            "Model versions loaded while serving (model control: poll or explicit)",
            ["model"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "skipfold_model_load_failures",
            "Model versions that failed to load while serving; what was serving stayed",
            ["model"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "skipfold_requests_in_flight",
            "Inference requests being handled now",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
