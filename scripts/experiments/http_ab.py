"""Serving overhead, A/B: one client interleaves the same model in-process and POST /predict to
each running server in interleaved rounds (`skipfold.bench.rounds`), and prints the medians.

    python scripts/experiments/http_ab.py MODEL.onnx IMAGE.png ROUNDS NAME=URL [NAME=URL ...]

e.g. two `skipfold serve` processes, one per commit, on ports 8191 and 8192. Interleaving puts
machine drift on every variant alike; see docs/results.md ("Serving overhead").
"""

import http.client
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from skipfold.bench.rounds import interleaved
from skipfold.service.runtime import create_session


def main() -> None:
    model_path, image_path, rounds, *targets = sys.argv[1:]
    body = Path(image_path).read_bytes()
    session = create_session(model_path, ["CPUExecutionProvider"], 2, "all", "cpu")
    images = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    steps = {"in-process": lambda: session.run(None, {"images": images})}
    for target in targets:
        name, url = target.split("=", 1)
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port)
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path

        def post(connection=connection, path=path) -> None:
            connection.request("POST", path, body, {"Content-Type": "image/png"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status

        steps[name] = post
    timings = interleaved(steps, rounds=int(rounds), warmup_calls=30)
    base = timings["in-process"].summary()["p50_ms"]
    for name, timing in timings.items():
        p50 = timing.summary()["p50_ms"]
        print(f"{name:12s} p50 {p50:7.3f} ms   minus in-process {p50 - base:+.3f} ms")


if __name__ == "__main__":
    main()
