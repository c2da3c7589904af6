"""Latency of one request through Triton's own clients, HTTP (binary tensors) against gRPC, in
one run: interleaved rounds of 0.1-second blocks (`skipfold.bench.rounds`), medians and
percentiles of each.

    skipfold serve --repo demo/repo --port 8000 --grpc-port 8001 &
    python scripts/experiments/grpc_vs_http.py 127.0.0.1 8000 8001 bn 20
"""

import sys

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from skipfold.bench.rounds import interleaved


def main(host: str, http_port: int, grpc_port: int, model: str, blocks: int) -> None:
    images = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    http = triton_http.InferenceServerClient(f"{host}:{http_port}")
    grpc = triton_grpc.InferenceServerClient(f"{host}:{grpc_port}")
    http_input = triton_http.InferInput("images", [1, 32, 32, 3], "UINT8")
    http_input.set_data_from_numpy(images, binary_data=True)
    http_output = [triton_http.InferRequestedOutput("probabilities", binary_data=True)]
    grpc_input = triton_grpc.InferInput("images", [1, 32, 32, 3], "UINT8")
    grpc_input.set_data_from_numpy(images)
    grpc_output = [triton_grpc.InferRequestedOutput("probabilities")]
    calls = {
        "http": lambda: http.infer(model, [http_input], outputs=http_output),
        "grpc": lambda: grpc.infer(model, [grpc_input], outputs=grpc_output),
    }
    timings = interleaved(calls, rounds=blocks, block_seconds=0.1, warmup_calls=50)
    for name, timing in timings.items():
        summary = timing.summary()
        print(
            f"{name}: p50 {summary['p50_ms']:.3f} ms, p90 {summary['p90_ms']:.3f}, p99 "
            f"{summary['p99_ms']:.3f}; block medians p25-p75 {summary['round_p25_ms']:.3f}-"
            f"{summary['round_p75_ms']:.3f} ({len(timing.latencies)} requests)"
        )
    ratio = timings["grpc"].summary()["p50_ms"] / timings["http"].summary()["p50_ms"]
    print(f"grpc / http p50: {ratio:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
