"""OpenVINO as the server's engine: the same answers as ONNX Runtime, a pool of infer requests
that threads share safely, the precision it computes in, and a real server on it."""

import threading

import httpx
import numpy as np
import pytest

from skipfold.service.runtime import DeviceError, Runner, create_session
from skipfold.service.settings import Settings
from tests.helpers import Server, sample_images

# the OpenVINO engines run on the CPU only (under pytest --device cuda, Settings refuse them)
pytestmark = pytest.mark.cpu_only

openvino_runtime = pytest.importorskip("skipfold.service.openvino_runtime")
pytest.importorskip("openvino")


def _reference(path) -> Runner:
    return Runner(create_session(path, ["CPUExecutionProvider"], 1, "all", "cpu"))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_runner_answers_as_onnx_runtime_does(repo, precision):
    if precision not in openvino_runtime.cpu_precisions():
        pytest.skip(f"this CPU has no native {precision}")
    path = repo / "bn" / "2" / "model.onnx"
    runner = openvino_runtime.OpenVINORunner(path, 1, precision)
    assert runner.output_names == ["logits", "probabilities"] and runner.input_name == "images"
    images = sample_images(8)
    ours, theirs = runner(images), _reference(path)(images)
    assert [o.shape for o in ours] == [(8, 10), (8, 10)]
    tolerance = 1e-5 if precision == "fp32" else 2e-2  # bf16 keeps 8 bits of mantissa
    np.testing.assert_allclose(ours[1], theirs[1], atol=tolerance)
    assert (ours[1].argmax(1) == theirs[1].argmax(1)).mean() >= 0.75


def test_threads_calling_at_once_each_get_their_own_answers(repo):
    path = repo / "skipinit" / "1" / "model.onnx"
    runner = openvino_runtime.OpenVINORunner(path, 1, "fp32")
    reference = _reference(path)
    batches = [sample_images(1 + i % 3, seed=i) for i in range(24)]
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        for _ in range(5):
            results[i] = runner(batches[i])[1]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, batch in enumerate(batches):
        np.testing.assert_allclose(results[i], reference(batch)[1], atol=1e-5)
    assert runner._idle.qsize() <= len(batches)  # one request per call at once, reused


def test_auto_is_bf16_where_the_cpu_has_it_and_fp32_for_a_quantized_graph(monkeypatch):
    native = openvino_runtime.cpu_precisions()
    assert "fp32" in native
    assert openvino_runtime.resolve_precision("auto") == ("bf16" if "bf16" in native else "fp32")
    assert openvino_runtime.resolve_precision("auto", quantized=True) == "fp32"
    monkeypatch.setattr(openvino_runtime, "cpu_precisions", lambda: ["fp32"])
    assert openvino_runtime.resolve_precision("auto") == "fp32"
    with pytest.raises(DeviceError, match=r"no native bf16 .*offers: fp32"):
        openvino_runtime.resolve_precision("bf16")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"engine": "openvino", "device": "cuda"}, "runs on the CPU only"),
        ({"inference_precision": "bf16"}, "needs an OpenVINO engine"),
        ({"engine_min_agreement": 1.5}, "less than or equal to 1"),
    ],
)
def test_settings_refuse_what_the_engine_cannot_do(repo, values, message):
    with pytest.raises(ValueError, match=message):
        Settings(repository=repo, **values)


@pytest.mark.e2e
def test_a_server_on_openvino_serves_what_onnx_runtime_serves(repo):
    images = sample_images(6, seed=7)
    labels = {}
    for engine in ("onnxruntime", "openvino"):
        server = Server(repo, "--engine", engine, "--models", "bn,skipinit")
        try:
            server.wait_ready()
            listed = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()["models"]}
            labels[engine] = [server.top_label("skipinit", image) for image in images]
        finally:
            server.stop()
        model = listed["skipinit"]
        assert model["engine"] == engine
        if engine == "openvino":
            check = model["engine_check"]
            # the check ran at load (its limits are the server's own: not restated here); the
            # independent test is the labels above, the same as ONNX Runtime's on the test's images
            assert check["images"] == 64, check
            assert model["execution_providers"][0].startswith("OpenVINO")
            assert model["inference_precision"] in openvino_runtime.cpu_precisions()
        else:
            assert model["engine_check"] is None and model["inference_precision"] == "fp32"
    assert labels["openvino"] == labels["onnxruntime"]


@pytest.mark.e2e
def test_a_model_that_fails_the_check_keeps_the_server_from_starting(exported_repo):
    server = Server(
        exported_repo, "--engine", "openvino", "--engine-tolerance", "0",
        "--engine-min-agreement", "1",
    )  # fmt: skip
    output = server.stop() if server.process.wait(timeout=120) is not None else ""
    assert server.process.returncode != 0
    refusal = [line for line in output.splitlines() if "cannot start:" in line]
    assert len(refusal) == 1, output
    assert "on 64 check images" in refusal[0] and "not served" in refusal[0]
    assert "Traceback" not in output
