"""Latency of one request through Triton's own clients, HTTP (binary tensors) against gRPC, in
one run: blocks of 100 requests alternating A B A B ..., medians and percentiles of each.

    skipfold serve --repo demo/repo --port 8000 --grpc-port 8001 &
    python docs/experiments/grpc_vs_http.py 127.0.0.1 8000 8001 bn 20
"""

import statistics
import sys
import time

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http


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
    for call in calls.values():  # warm-up: connections, the first allocations
        for _ in range(50):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    block_medians: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(blocks):
        for name, call in calls.items():
            block = []
            for _ in range(100):
                started = time.perf_counter()
                call()
                block.append(1000 * (time.perf_counter() - started))
            samples[name] += block
            block_medians[name].append(statistics.median(block))
    for name, values in samples.items():
        q = np.percentile(values, [50, 90, 99])
        spread = np.percentile(block_medians[name], [25, 75])
        print(
            f"{name}: p50 {q[0]:.3f} ms, p90 {q[1]:.3f}, p99 {q[2]:.3f}; block medians "
            f"p25-p75 {spread[0]:.3f}-{spread[1]:.3f} ({len(values)} requests)"
        )
    ratio = statistics.median(samples["grpc"]) / statistics.median(samples["http"])
    print(f"grpc / http p50: {ratio:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
