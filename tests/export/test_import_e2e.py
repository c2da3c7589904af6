"""`skipfold import` on networks nobody here designed for it, end to end: written in the tests
and exported by torch.onnx (ResNet-18 post- and pre-activation, the latter also with typical
gammas and with two negative ones in each BN, ResNet-50, MobileNetV2, DenseNet-BC, also with
those two kinds of gammas, VGG-11 with BN) and the
onnx wheel's light ShuffleNet, ResNet-50, Inception-v2 and DenseNet-121 (Caffe2, opset 9,
fixed batch 1), each imported, then served by a real server and asked over
/predict and tritonclient (HTTP, gRPC). The reference is the original file in ONNX Runtime,
fed images this test preprocesses itself (Pillow, numpy)."""

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from PIL import Image

from skipfold.cli import main
from skipfold.export.import_options import PRESETS
from skipfold.formats.model_card import ModelCard
from tests.export import torch_nets
from tests.export.fold_counts import optimized, per_channel_nodes
from tests.export.test_graph_fold import _materialized
from tests.helpers import Server, free_port, png

pytestmark = pytest.mark.e2e

CIFAR = PRESETS["cifar"]
IMAGENET = PRESETS["imagenet"]
SOURCES = {}  # name -> (original file, preset, resize_shorter, size)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("import")
    repo = folder / "repo"
    for name, make in torch_nets.NETWORKS.items():
        net = torch_nets.with_random_statistics(make(), seed=len(name))
        path = torch_nets.export(net, folder / f"{name}.onnx")
        assert main(["import", str(path), "--repo", str(repo), "--preprocess", "cifar"]) == 0
        SOURCES[name] = (path, CIFAR, None, 32)
    # trained networks' gammas are mostly positive: then every pre-activation BN goes too
    net = torch_nets.with_random_statistics(torch_nets.resnet18(True), seed=3, typical=True)
    path = torch_nets.export(net, folder / "preact_typical.onnx")
    assert main(["import", str(path), "--repo", str(repo), "--preprocess", "cifar"]) == 0
    SOURCES["preact_typical"] = (path, CIFAR, None, 32)
    # a DenseNet-BC likewise: the first BN of each dense block goes too (its offset into the
    # Conv before it, through the transition's pooling; the Concats carry it to the later BNs)
    net = torch_nets.with_random_statistics(torch_nets.densenet_bc(), seed=4, typical=True)
    path = torch_nets.export(net, folder / "densenet_typical.onnx")
    assert main(["import", str(path), "--repo", str(repo), "--preprocess", "cifar"]) == 0
    SOURCES["densenet_typical"] = (path, CIFAR, None, 32)
    # with two negative gammas in each BN: the stream is negated for every other BN (the one
    # between keeps), a DenseNet's block inputs for each first BN
    signed = {"preact_signed": torch_nets.resnet18(True)}
    signed["densenet_signed"] = torch_nets.densenet_bc()
    for name, net in signed.items():
        net = torch_nets.with_random_statistics(net, seed=6, signed=True)
        path = torch_nets.export(net, folder / f"{name}.onnx")
        assert main(["import", str(path), "--repo", str(repo), "--preprocess", "cifar"]) == 0
        SOURCES[name] = (path, CIFAR, None, 32)
    for light in ("shufflenet", "resnet50", "inception_v2", "densenet121"):
        path = folder / f"light_{light}.onnx"
        onnx.save(_materialized(f"light_{light}"), str(path))
        name = light if light == "shufflenet" else f"light_{light}"
        assert main(["import", str(path), "--repo", str(repo), "--name", name]) == 0
        SOURCES[name] = (path, IMAGENET, 256, 224)
    return repo


def _after_conv(path) -> int:
    """BNs that read a Conv's output which nothing else reads (a shared output, such as a
    pre-activation stem's, feeds the shortcut too: the fold cannot change it)."""
    model = onnx.load(str(path))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    readers = [name for n in model.graph.node for name in n.input]
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    return sum(producers.get(n.input[0]) == "Conv" and readers.count(n.input[0]) == 1 for n in bns)


def test_every_bn_with_an_exact_fold_is_folded_and_the_rest_reported(imported):
    for name, (path, *_) in SOURCES.items():
        card = ModelCard.read(imported / name / "1" / "model.onnx")
        report = card.fold_report
        total = sum(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)
        assert len(report) == total > 0, name
        assert sum(entry.folded_into is not None for entry in report) >= _after_conv(path)
        # after convolutions, or before ReLUs on a stream a Conv makes with gammas that leave
        # nothing behind (pre-activation): all
        everything = ("resnet18", "resnet50", "preact_typical", "mobilenet_v2", "vgg11_bn")
        if name in (*everything, "shufflenet", "light_resnet50", "light_inception_v2"):
            assert all(entry.folded_into for entry in report), name
            served = onnx.load(str(imported / name / "1" / "model.onnx"))
            assert not any(n.op_type == "BatchNormalization" for n in served.graph.node)
        if name in ("densenet_typical", "densenet_signed"):  # only the BNs after a Concat left
            kept = [entry.reason for entry in report if not entry.folded_into]
            assert len(kept) == 6 and all(r.startswith("after Concat") for r in kept), kept


def test_fewer_per_channel_nodes_than_onnx_runtime_level_all(imported, tmp_path):
    """Where BNs sit before convolutions or after additions or concatenations, the import leaves
    fewer nodes doing a BN's work than ONNX Runtime's own optimizer, which runs each BN it cannot
    fuse as a depthwise Conv (tests/export/fold_counts.py counts both the same way)."""
    names = ("preact_typical", "densenet_typical", "preact_signed", "densenet_signed")
    for name in (*names, "light_densenet121"):
        theirs = per_channel_nodes(optimized(SOURCES[name][0], tmp_path / f"{name}.onnx"))
        ours = per_channel_nodes(onnx.load(str(imported / name / "1" / "model.onnx")))
        assert ours < theirs, (name, ours, theirs)


def _reference(name: str, image: np.ndarray, decoded: bool = False) -> np.ndarray:
    """The original graph's logits on `image` (uint8 HWC), preprocessed here as torchvision's
    documentation says (Resize(int): the shorter side to it, the longer int(size * long /
    short); CenterCrop), with Pillow and numpy; `decoded`: `image` is the input as it is."""
    path, preset, resize, size = SOURCES[name]
    picture = Image.fromarray(image)
    if decoded:
        pass
    elif resize is None:
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    else:
        short, long = sorted(picture.size)
        longer = int(resize * long / short)
        portrait = picture.width <= picture.height
        picture = picture.resize(
            (resize, longer) if portrait else (longer, resize), Image.Resampling.BILINEAR
        )
        left = int(round((picture.width - size) / 2.0))  # noqa: RUF046 (torchvision's rounding)
        top = int(round((picture.height - size) / 2.0))  # noqa: RUF046
        picture = picture.crop((left, top, left + size, top + size))
    pixels = (np.asarray(picture, np.float64) / 255 - preset.mean) / preset.std
    batch = pixels.transpose(2, 0, 1)[None].astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0].reshape(-1)


def _images(count: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """Smooth images (gradients and blobs), so that resizing changes them little."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    images = []
    for _ in range(count):
        a, b, c = rng.uniform(-3, 3, (3, 3))
        channels = [np.sin(a[i] * x + b[i] * y + c[i]) for i in range(3)]
        images.append(((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8))
    return images


def test_imported_models_answer_predict_and_tritonclient_as_the_original(imported):
    grpc_port = free_port()
    server = Server(imported, "--grpc-port", str(grpc_port))
    server.wait_ready(timeout=120)
    try:
        http_client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
        grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        for name, (_, _, resize, size) in SOURCES.items():
            card = ModelCard.read(imported / name / "1" / "model.onnx")
            gives = card.imported_from.outputs  # logits, or (a final Softmax) probabilities
            for image in _images(2, (size + 8, size + 20) if resize else (40, 48)):
                expected = _reference(name, image)
                if gives == "logits":
                    expected = (
                        np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum()
                    )
                answers = httpx.post(
                    f"{server.url}/predict?model={name}&top_k={len(expected)}",
                    content=png(image),
                    headers={"content-type": "image/png"},
                ).json()["results"][0]["predictions"]
                served = np.zeros(len(expected))
                served[[a["index"] for a in answers]] = [a["probability"] for a in answers]
                # the same pixels (resize and crop) give the same probabilities
                np.testing.assert_allclose(served, expected, atol=1e-5, err_msg=name)
            tensors = np.stack(_images(1, (size, size)))
            direct = _reference(name, tensors[0], decoded=True)
            for client, module in ((http_client, triton_http), (grpc_client, triton_grpc)):
                tensor = module.InferInput("images", list(tensors.shape), "UINT8")
                tensor.set_data_from_numpy(tensors)
                output = gives  # the same values as the original's output
                got = client.infer(name, [tensor]).as_numpy(output)[0]
                scale = max(1.0, float(np.abs(direct).max()))
                assert np.abs(got - direct).max() <= 1e-4 * scale, name
    finally:
        server.stop()


def test_fold_all_leaves_no_bn_where_an_exact_fold_exists(tmp_path):
    """The pre-activation ResNet-18 with gammas of every sign, 0 and 1e-8: by default its 9
    stream BNs stay (their folds would leave a Mul and an Add); with --fold-all none stays,
    the report says what each left, and the import's check against the unfolded graph holds."""
    net = torch_nets.with_random_statistics(torch_nets.resnet18(True), seed=8)
    path = torch_nets.export(net, tmp_path / "preact.onnx")
    repo = tmp_path / "repo"
    flags = ["--repo", str(repo), "--preprocess", "cifar"]
    assert main(["import", str(path), *flags, "--name", "kept"]) == 0
    kept = onnx.load(str(repo / "kept" / "1" / "model.onnx"))
    assert sum(n.op_type == "BatchNormalization" for n in kept.graph.node) == 9
    assert main(["import", str(path), *flags, "--fold-all"]) == 0
    served = onnx.load(str(repo / "preact" / "1" / "model.onnx"))
    assert not any(n.op_type == "BatchNormalization" for n in served.graph.node)
    report = ModelCard.read(repo / "preact" / "1" / "model.onnx").fold_report
    assert all(entry.folded_into for entry in report)
    assert sum("before the ReLU" in entry.folded_into for entry in report) == 9
