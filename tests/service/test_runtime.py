"""ONNX Runtime's OpenVINO execution provider as the server's engine (`--engine
onnxruntime-openvino`): the precision it computes in, a clear refusal where the installed
onnxruntime lacks it, and a real server on it that answers as ONNX Runtime's CPU provider does."""

import httpx
import onnxruntime as ort
import pytest

from skipfold.service import runtime
from skipfold.service.runtime import OPENVINO, DeviceError
from tests.helpers import Server, sample_images

# the OpenVINO engines run on the CPU only (under pytest --device cuda, Settings refuse them)
pytestmark = pytest.mark.cpu_only


def test_the_execution_providers_precision_follows_the_cpus_flags(monkeypatch):
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: {"avx2", "avx512f", "amx_bf16"})
    assert runtime.openvino_ep_precision("auto") == "bf16"
    assert runtime.openvino_ep_precision("fp32") == "fp32"
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert runtime.openvino_ep_precision("auto") == "fp32"
    for refused in ("bf16", "fp16"):
        with pytest.raises(DeviceError, match=f"--inference-precision {refused}: .*fp32 at most"):
            runtime.openvino_ep_precision(refused)


@pytest.mark.e2e
def test_without_the_execution_provider_the_server_says_what_to_install(repo):
    if OPENVINO in ort.get_available_providers():
        pytest.skip("this onnxruntime has the OpenVINO execution provider")
    server = Server(repo, "--engine", "onnxruntime-openvino")
    assert server.process.wait(timeout=120) != 0
    output = server.stop()
    refusal = [line for line in output.splitlines() if "cannot start:" in line]
    assert len(refusal) == 1, output
    assert "pip uninstall onnxruntime && pip install onnxruntime-openvino" in refusal[0]
    assert "Traceback" not in output


@pytest.mark.e2e
def test_a_server_on_the_execution_provider_serves_what_onnx_runtime_serves(repo, openvino_ep):
    images = sample_images(6, seed=11)
    labels, listed = {}, {}
    for engine, env in (("onnxruntime", None), ("onnxruntime-openvino", openvino_ep)):
        server = Server(repo, "--engine", engine, "--models", "bn,skipinit", env=env)
        try:
            server.wait_ready(timeout=120)
            models = httpx.get(f"{server.url}/models").json()["models"]
            listed[engine] = {m["name"]: m for m in models}
            labels[engine] = [
                server.top_label(name, image) for name in ("bn", "skipinit") for image in images
            ]
        finally:
            server.stop()
    assert labels["onnxruntime-openvino"] == labels["onnxruntime"]
    for name in ("bn", "skipinit"):
        model = listed["onnxruntime-openvino"][name]
        assert model["engine"] == "onnxruntime-openvino"
        assert model["execution_providers"][0] == OPENVINO
        assert model["inference_precision"] == runtime.openvino_ep_precision("auto")
        check = model["engine_check"]
        # the check ran at load (its limits are the server's own: not restated here); the
        # independent test is the labels above, the same as ONNX Runtime's on the test's images
        assert check["images"] == 64, check
