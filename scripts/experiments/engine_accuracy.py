"""Test accuracy of each model of a repository under each engine and precision the server offers,
through the server's own runners (OpenVINO's runtime, and ONNX Runtime's OpenVINO execution
provider where onnxruntime-openvino is the onnxruntime imported), against ONNX Runtime running
the same file.

    python scripts/experiments/engine_accuracy.py REPO DATASET [DATA_DIR]

DATASET is `shapes` (the built-in test set, 2,000 images) or `imagefolder` with DATA_DIR (e.g.
the CIFAR-10 JPEG archive unpacked: DATA_DIR/test/CLASS/*.jpg). Images are run at batch 1, as
served. See docs/results.md ("OpenVINO").
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from skipfold.formats.model_repository import ModelRepository
from skipfold.service import openvino_runtime
from skipfold.service.runtime import (
    OPENVINO,
    Runner,
    create_openvino_ep_session,
    create_session,
    openvino_ep_precision,
)
from skipfold.training.datasets import load_dataset


def top1(runner, images: np.ndarray) -> np.ndarray:
    return np.array([int(np.argmax(runner(image[None])[0][0])) for image in images])


def main() -> None:
    repo, dataset, *rest = sys.argv[1:]
    data = load_dataset(dataset, Path(rest[0]) if rest else None)
    images, labels = data.test_images, data.test_labels
    precisions = openvino_runtime.cpu_precisions()
    # ONNX Runtime's OpenVINO execution provider, where this onnxruntime is onnxruntime-openvino
    ep = (
        sorted({"fp32", openvino_ep_precision("auto")})
        if OPENVINO in ort.get_available_providers()
        else []
    )
    print(f"{len(images)} test images of {dataset}; OpenVINO {openvino_runtime.version()}; "
          f"ONNX Runtime {ort.__version__}")  # fmt: skip
    columns = [f"OpenVINO {p}" for p in precisions] + [f"EP {p}" for p in ep]
    print("| model | ONNX Runtime | " + " | ".join(columns) + " |")
    print("| --- | ---: |" + " ---: |" * len(columns))
    for name, path in ModelRepository(Path(repo)).latest().items():
        reference = top1(Runner(create_session(path, ["CPUExecutionProvider"], 2, "all", "cpu")),
                         images)  # fmt: skip
        cells = [f"{100 * np.mean(reference == labels):.2f}%"]
        runners = [openvino_runtime.OpenVINORunner(path, 2, p) for p in precisions] + [
            Runner(create_openvino_ep_session(path, 2, "all", p)) for p in ep
        ]
        for runner in runners:
            answers = top1(runner, images)
            accuracy = 100 * np.mean(answers == labels)
            agreement = 100 * np.mean(answers == reference)
            cells.append(f"{accuracy:.2f}% (agrees {agreement:.2f}%)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
