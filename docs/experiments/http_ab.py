"""Serving overhead, A/B: one client interleaves the same model in-process and POST /predict to
each running server, in a fresh random order every round, and prints the medians.

    python docs/experiments/http_ab.py MODEL.onnx IMAGE.png ROUNDS NAME=URL [NAME=URL ...]

e.g. two `skipfold serve` processes, one per commit, on ports 8191 and 8192. Interleaving puts
machine drift on every variant alike; see docs/results.md ("Serving overhead").
"""

import http.client
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

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
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(30):
        for step in steps.values():
            step()
    for _ in range(int(rounds)):
        order = list(steps)
        random.shuffle(order)
        for name in order:
            started = time.perf_counter()
            steps[name]()
            times[name].append(1000 * (time.perf_counter() - started))
    base = statistics.median(times["in-process"])
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:12s} p50 {p50:7.3f} ms   minus in-process {p50 - base:+.3f} ms")


if __name__ == "__main__":
    main()
