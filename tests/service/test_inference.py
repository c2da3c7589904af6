"""Where a call runs: a short one on the event loop when it is the only work, the rest in the
worker thread."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from skipfold.service.app import create_app
from skipfold.service.inference import InferenceEngine
from skipfold.service.metrics import Metrics
from skipfold.service.registry import ModelRegistry
from skipfold.service.settings import Settings
from tests.helpers import Server, png, sample_images


def calls(metrics: Metrics, model: str, runs_on: str) -> float:
    labels = {"model": model, "runs_on": runs_on}
    return metrics.registry.get_sample_value("skipfold_inference_calls_total", labels) or 0.0


def post_image(client, url: str = "", seed: int = 0):
    image = png(sample_images(1, seed=seed)[0])
    return client.post(f"{url}/predict", content=image, headers={"content-type": "image/png"})


def test_warm_up_times_one_image_and_a_single_request_runs_inline(repo):
    settings = Settings(repository=repo, intra_op_threads=1, models="skipinit")
    with TestClient(create_app(settings)) as client:
        model = client.app.state.registry.get("skipinit", None)
        assert 0 < model.seconds_per_image < 1
        response = post_image(client)
        assert response.status_code == 200
        assert response.json()["timings_ms"]["queue"] == 0
        metrics = client.app.state.metrics
        assert calls(metrics, "skipinit", "event_loop") == 1
        assert calls(metrics, "skipinit", "worker") == 0


def test_long_calls_and_calls_beside_other_work_go_to_the_worker(repo):
    registry = ModelRegistry.load(Settings(repository=repo, intra_op_threads=1, models="bn"))
    model = registry.get("bn", None)
    model.seconds_per_image = 0.004  # as if measured: 1 image fits in 10 ms, 3 do not
    images = sample_images(3, seed=4)
    expected = model.runner(images)[1]
    waiting = set()  # stands for the server's request tasks

    async def scenario():
        metrics = Metrics()
        engine = InferenceEngine(metrics, inline_max_ms=10, requests=waiting)
        waiting.add("this request")
        one = await engine.infer(model, images[:1])
        assert calls(metrics, "bn", "event_loop") == 1
        three = await engine.infer(model, images)  # 12 ms expected
        assert calls(metrics, "bn", "worker") == 1
        waiting.add("another request, read but not started")
        other = await engine.infer(model, images[:1])
        waiting.discard("another request, read but not started")
        # the first call waits in the worker, so the second may not run beside it inline
        both = await asyncio.gather(engine.infer(model, images), engine.infer(model, images[:1]))
        assert calls(metrics, "bn", "event_loop") == 1 and calls(metrics, "bn", "worker") == 4
        await engine.close()
        return one, three, other, both

    one, three, other, both = asyncio.run(scenario())
    np.testing.assert_array_equal(one.outputs[1], expected[:1])
    np.testing.assert_array_equal(three.outputs[1], expected)
    np.testing.assert_array_equal(other.outputs[1], expected[:1])
    np.testing.assert_array_equal(both[0].outputs[1], expected)
    np.testing.assert_array_equal(both[1].outputs[1], expected[:1])


def test_inline_off_sends_every_call_to_the_worker(repo):
    settings = Settings(repository=repo, intra_op_threads=1, models="skipinit", inline_max_ms=0)
    with TestClient(create_app(settings)) as client:
        assert post_image(client).status_code == 200
        assert calls(client.app.state.metrics, "skipinit", "event_loop") == 0


@pytest.mark.e2e
def test_served_one_at_a_time_inline_and_a_burst_through_the_worker(repo):
    server = Server(repo, "--models", "skipinit")
    server.wait_ready()

    def counts() -> dict[str, float]:
        prefix = 'skipfold_inference_calls_total{model="skipinit",runs_on="'
        lines = httpx.get(f"{server.url}/metrics").text.splitlines()
        return {
            line[len(prefix) :].split('"')[0]: float(line.split()[-1])
            for line in lines
            if line.startswith(prefix)
        }

    try:
        with httpx.Client() as client:
            for seed in range(5):
                assert post_image(client, server.url, seed).status_code == 200
        alone = counts()
        assert alone.get("event_loop") == 5 and alone.get("worker", 0) == 0

        def burst(seed: int) -> int:
            with httpx.Client() as client:
                return sum(post_image(client, server.url, seed).status_code for _ in range(8))

        with ThreadPoolExecutor(16) as pool:
            assert list(pool.map(burst, range(16))) == [8 * 200] * 16
        after = counts()
        assert after["worker"] > 0
        assert after["event_loop"] + after["worker"] == 5 + 16 * 8
    finally:
        server.stop()


def test_two_workers_run_two_calls_at_once_and_keep_each_answer(repo):
    registry = ModelRegistry.load(Settings(repository=repo, intra_op_threads=1, models="bn"))
    model = registry.get("bn", None)
    images = sample_images(16, seed=5)
    expected = model.runner(images)[1]
    run, active, peak, begun, lock = model.runner, 0, 0, 0, threading.Lock()
    both = threading.Barrier(2, timeout=30)  # the first two calls meet: both are running at once

    def counted(batch):  # the real runner, counting the calls in progress
        nonlocal active, peak, begun
        with lock:
            active, begun = active + 1, begun + 1
            peak, first_two = max(peak, active), begun <= 2
        try:
            if first_two:  # with one worker the second never starts: the barrier breaks
                both.wait()
            return run(batch)
        finally:
            with lock:
                active -= 1

    model.runner = counted

    async def scenario():
        engine = InferenceEngine(Metrics(), inline_max_ms=0, workers=2)
        results = await asyncio.gather(
            *(engine.infer(model, images[i : i + 4]) for i in (0, 4, 8, 12))
        )
        await engine.close()
        return results

    results = asyncio.run(scenario())
    assert peak == 2
    for i, result in zip((0, 4, 8, 12), results, strict=True):
        np.testing.assert_array_equal(result.outputs[1], expected[i : i + 4])


def test_a_retired_version_finishes_unbatched_and_leaves_no_batch_queue(repo):
    """A request that took a version before it was unloaded or replaced still gets its answer,
    without a batch queue that nothing would ever end (service.model_control)."""
    registry = ModelRegistry.load(Settings(repository=repo, intra_op_threads=1, models="bn"))
    model = registry.get("bn", None)
    images = sample_images(2, seed=9)
    expected = model.runner(images)[1]

    async def scenario():
        engine = InferenceEngine(Metrics(), max_batch_size=8, max_queue_delay_ms=1)
        batched = await engine.infer(model, images)
        assert list(engine._batchers) == [("bn", 2)]
        engine.retire(model)
        assert model.retired and not engine._batchers
        late = await engine.infer(model, images)  # took the model before it was retired
        assert not engine._batchers
        await engine.close()
        return batched, late

    batched, late = asyncio.run(scenario())
    np.testing.assert_array_equal(batched.outputs[1], expected)
    np.testing.assert_array_equal(late.outputs[1], expected)


def test_grpc_calls_count_as_other_work(repo):
    registry = ModelRegistry.load(Settings(repository=repo, intra_op_threads=1, models="bn"))
    model = registry.get("bn", None)
    model.seconds_per_image = 0.001

    async def scenario():
        metrics = Metrics()
        engine = InferenceEngine(metrics, inline_max_ms=10, requests=set())
        engine.other_requests = 2  # two gRPC calls in flight: this one and another
        await engine.infer(model, sample_images(1))
        engine.other_requests = 1  # alone
        await engine.infer(model, sample_images(1))
        await engine.close()
        return metrics

    metrics = asyncio.run(scenario())
    assert calls(metrics, "bn", "worker") == 1 and calls(metrics, "bn", "event_loop") == 1
