"""Test accuracy as a client sees it: every image of an image-folder test set, as its own file,
POSTed to a running `skipfold serve`'s /predict, for each model; then each model's accuracy, the
agreement between models and the median request time.

    python scripts/experiments/served_accuracy.py URL TEST_FOLDER MODEL [MODEL ...]

e.g. `skipfold serve --repo crepo --port 8311` and the CIFAR-10 JPEG archive's `test/` folder
(one sub-folder per class, named as the model's labels). The images go through the server's own
decoding, as the bytes on disk: the whole path from file to label; see docs/results.md
("CIFAR-10 on the 2-core CPU").
"""

import http.client
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def main() -> None:
    url, folder, *models = sys.argv[1:]
    files = sorted(p for p in Path(folder).glob("*/*") if p.is_file())
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    top1: dict[str, list[str]] = {model: [] for model in models}
    seconds: dict[str, list[float]] = {model: [] for model in models}
    for path in files:
        body = path.read_bytes()
        for model in models:
            started = time.perf_counter()
            connection.request(
                "POST", f"/predict?model={model}&top_k=1", body, {"Content-Type": "image/jpeg"}
            )
            response = connection.getresponse()
            payload = response.read()
            seconds[model].append(time.perf_counter() - started)
            if response.status != 200:
                raise SystemExit(f"{path}: {model}: HTTP {response.status}: {payload[:200]!r}")
            top1[model].append(json.loads(payload)["results"][0]["predictions"][0]["label"])
    truth = [path.parent.name for path in files]
    print(f"{len(files)} images from {folder}, one request each, through {url}/predict")
    print("| model | test accuracy | median request (ms) |")
    print("| --- | ---: | ---: |")
    for model in models:
        correct = sum(a == b for a, b in zip(top1[model], truth, strict=True))
        median_ms = 1000 * statistics.median(seconds[model])
        print(f"| {model} | {100 * correct / len(files):.2f}% | {median_ms:.2f} |")
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            same = sum(x == y for x, y in zip(top1[a], top1[b], strict=True))
            print(f"top-1 agreement {a} / {b}: {100 * same / len(files):.2f}%")


if __name__ == "__main__":
    main()
