"""Where a call runs: short ones on the event loop while the worker is idle, the rest in it."""

import asyncio

import numpy as np
from fastapi.testclient import TestClient

from service.app import create_app
from service.inference import InferenceEngine
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.settings import Settings
from tests.service.conftest import png, sample_images


def test_warm_up_times_one_image_and_a_single_request_runs_inline(repo):
    settings = Settings(repository=repo, intra_op_threads=1, models="skipinit")
    with TestClient(create_app(settings)) as client:
        model = client.app.state.registry.get("skipinit", None)
        assert 0 < model.seconds_per_image < 1
        r = client.post(
            "/predict", content=png(sample_images(1)[0]), headers={"content-type": "image/png"}
        )
        assert r.status_code == 200
        assert client.app.state.engine.inline_calls == 1
        assert r.json()["timings_ms"]["queue"] == 0


def test_long_calls_and_calls_beside_a_busy_worker_go_to_the_worker(repo):
    registry = ModelRegistry.load(Settings(repository=repo, intra_op_threads=1, models="bn"))
    model = registry.get("bn", None)
    model.seconds_per_image = 0.004  # as if measured: 1 image fits 10 ms, 3 do not
    images = sample_images(3, seed=4)
    expected = model.runner(images)[1]

    async def scenario():
        engine = InferenceEngine(Metrics(), inline_max_ms=10)
        one = await engine.infer(model, images[:1])
        assert engine.inline_calls == 1
        three = await engine.infer(model, images)
        assert engine.inline_calls == 1  # 12 ms expected: the worker
        # the first call waits in the worker, so the second may not run beside it inline
        both = await asyncio.gather(engine.infer(model, images), engine.infer(model, images[:1]))
        assert engine.inline_calls == 1
        await engine.close()
        return one, three, both

    one, three, both = asyncio.run(scenario())
    np.testing.assert_array_equal(one.outputs[1], expected[:1])
    np.testing.assert_array_equal(three.outputs[1], expected)
    np.testing.assert_array_equal(both[0].outputs[1], expected)
    np.testing.assert_array_equal(both[1].outputs[1], expected[:1])


def test_inline_off_sends_every_call_to_the_worker(repo):
    settings = Settings(repository=repo, intra_op_threads=1, models="skipinit", inline_max_ms=0)
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/predict", content=png(sample_images(1)[0]), headers={"content-type": "image/png"}
        )
        assert r.status_code == 200
        assert client.app.state.engine.inline_calls == 0
