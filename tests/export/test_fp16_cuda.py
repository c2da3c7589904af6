"""An fp16 export on the GPU it is made for (pytest --device cuda; skipped elsewhere): ONNX
Runtime's CUDA provider against PyTorch's float16 kernels on the same GPU, with and without CUDA
graphs, and against the float32 export."""

import numpy as np
import pytest
import torch

from skipfold.export.exporter import export_run
from skipfold.export.onnx_graph import ImageClassifier
from skipfold.formats.model_repository import ModelRepository
from skipfold.service.runtime import Runner, create_session, resolve_providers
from skipfold.training.checkpoint import load_trained
from skipfold.training.run_folder import RunFolder
from tests.export.conftest import make_run

pytestmark = [pytest.mark.gpu, pytest.mark.e2e]


@pytest.mark.parametrize("variant", ["bn", "skipinit"])
def test_an_fp16_export_on_cuda_computes_what_pytorch_float16_does(variant, tmp_path):
    run = make_run(tmp_path / variant, variant, depth=16, width=2, test_limit=500, odd_gammas=False)
    repo = tmp_path / "repo"
    export_run(run, repo)
    export_run(run, repo, precision="fp16")
    found = ModelRepository(repo).latest()
    network, config = load_trained(RunFolder(run))
    data = config.data
    per_image = data.standardize == "per-image"
    half = ImageClassifier(network, data.mean, data.std, per_image, torch.float16)
    half = half.cuda().eval()
    providers = resolve_providers("cuda")
    fp32 = Runner(create_session(found[variant], providers, 1, "all", "cuda"))
    runners = [
        Runner(create_session(found[f"{variant}-fp16"], providers, 1, "all", "cuda", graphs))
        for graphs in (False, True)
    ]
    rng = np.random.default_rng(0)
    for batch in (1, 8, 1, 8, 1, 8, 64):
        images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
        with torch.inference_mode():
            want_logits, _ = half(torch.from_numpy(images).cuda())
        want = want_logits.float().cpu().numpy()
        full = fp32(images)[0]
        for runner in runners:
            logits = runner(images)[0]
            # two float16 computations of one network, each rounding every layer's output to
            # float16 (2^-11 a step): a wrong graph (weights, standardization, casts) is far off
            for reference in (want, full):
                difference = np.linalg.norm(logits - reference) / np.linalg.norm(reference)
                assert difference < 1e-2, (batch, difference)
            assert (logits.argmax(1) == want.argmax(1)).mean() >= 0.9
