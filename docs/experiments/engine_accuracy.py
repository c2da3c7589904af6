"""Test accuracy of each model of a repository under each engine and precision the server offers,
through the server's own runners, against ONNX Runtime running the same file.

    python docs/experiments/engine_accuracy.py REPO DATASET [DATA_DIR]

DATASET is `shapes` (the built-in test set, 2,000 images) or `imagefolder` with DATA_DIR (e.g.
the CIFAR-10 JPEG archive unpacked: DATA_DIR/test/CLASS/*.jpg). Images are run at batch 1, as
served. See docs/results.md ("OpenVINO").
"""

import sys
from pathlib import Path

import numpy as np

from skipfold.formats.model_repository import ModelRepository
from skipfold.service import openvino_runtime
from skipfold.service.runtime import Runner, create_session
from skipfold.training.datasets import load_dataset


def top1(runner, images: np.ndarray) -> np.ndarray:
    return np.array([int(np.argmax(runner(image[None])[0][0])) for image in images])


def main() -> None:
    repo, dataset, *rest = sys.argv[1:]
    data = load_dataset(dataset, Path(rest[0]) if rest else None)
    images, labels = data.test_images, data.test_labels
    precisions = openvino_runtime.cpu_precisions()
    print(f"{len(images)} test images of {dataset}; OpenVINO {openvino_runtime.version()}")
    print("| model | ONNX Runtime | " + " | ".join(f"OpenVINO {p}" for p in precisions) + " |")
    print("| --- | ---: |" + " ---: |" * len(precisions))
    for name, path in ModelRepository(Path(repo)).latest().items():
        reference = top1(Runner(create_session(path, ["CPUExecutionProvider"], 2, "all", "cpu")),
                         images)  # fmt: skip
        cells = [f"{100 * np.mean(reference == labels):.2f}%"]
        for precision in precisions:
            answers = top1(openvino_runtime.OpenVINORunner(path, 2, precision), images)
            accuracy = 100 * np.mean(answers == labels)
            agreement = 100 * np.mean(answers == reference)
            cells.append(f"{accuracy:.2f}% (agrees {agreement:.2f}%)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
