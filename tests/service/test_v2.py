"""The Open Inference Protocol over REST, in-process: JSON tensors, metadata, bad tensors."""

import numpy as np
import pytest

from tests.helpers import direct_probabilities, sample_images


def test_v2_json_inference_and_metadata(client, repo, serving_device):
    images = sample_images(3, seed=5)
    request = {
        "id": "abc",
        "inputs": [
            {
                "name": "images",
                "shape": [3, 32, 32, 3],
                "datatype": "UINT8",
                "data": images.tolist(),
            }
        ],
        "outputs": [
            {"name": "probabilities"},
            {"name": "probabilities", "parameters": {"classification": 2}},
        ],
    }
    response = client.post("/v2/models/skipinit/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("skipinit", "1", "abc")
    probabilities, top2 = body["outputs"]
    expected = direct_probabilities(repo, "skipinit", 1, images)
    # the CPU provider computes as the reference does; CUDA's float32 kernels add in another
    # order (measured on an H200: 4e-6 apart at most, on probabilities down to 1e-23)
    rtol = 1e-6 if serving_device == "cpu" else 1e-4
    np.testing.assert_allclose(np.array(probabilities["data"]).reshape(3, 10), expected, rtol=rtol)
    assert top2["datatype"] == "BYTES" and top2["shape"] == [3, 2]
    assert top2["data"][0].split(":")[1] == str(expected[0].argmax())
    meta = client.get("/v2/models/skipinit").json()
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}]
    assert client.get("/v2").json()["name"] == "skipfold"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"datatype": "FP32"}, "UINT8"),
        ({"shape": [1, 32, 32]}, "shape"),
        ({"name": "x"}, "unknown input"),
        ({"data": [300] * 3072}, "0..255"),
        ({"data": [1, 2, 3]}, "3072"),
    ],
)
def test_v2_bad_tensors_are_400(client, change, message):
    tensor = {"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8", "data": [0] * 3072}
    response = client.post("/v2/models/bn/infer", json={"inputs": [tensor | change]})
    assert response.status_code == 400
    assert message in response.json()["error"]
