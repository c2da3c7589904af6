"""Running models off the event loop in worker threads, optionally batched.

Calls run in `workers` worker threads (default 1). With one worker, one call runs at a time and
uses every intra-op thread: the lowest latency. Several single-threaded workers give more
throughput under load, because a batch-1 call spread over threads spends much of its time at the
barriers between them (docs/results.md).

A short call with nothing else to do is the exception: when no worker is busy and no other
request is waiting, a call expected to take at most `inline_max_ms` (from the model's warm-up
timing) runs on the event loop itself. Handing a call to a thread and the result back costs two
thread wake-ups, 0.5-0.9 ms per request on the 2-core CPU (docs/results.md), a tenth of a small
model's latency.

Dynamic batching (off by default): requests for the same model version that arrive within
`max_queue_delay_ms` of the first waiting one, up to `max_batch_size` images, are concatenated
into one call and the outputs are split back in order. A request is never split, and a
request larger than the batch limit runs on its own. While a batch runs, the next one fills.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from skipfold.service.metrics import Metrics
from skipfold.service.served_model import ServedModel


@dataclass
class Result:
    outputs: list[np.ndarray]  # in the model's output order, this request's rows only
    queue_s: float
    inference_s: float
    batch_size: int


@dataclass
class _Pending:
    images: np.ndarray
    future: asyncio.Future
    enqueued: float


class InferenceEngine:
    def __init__(
        self,
        metrics: Metrics,
        max_batch_size: int = 0,
        max_queue_delay_ms: float = 2.0,
        inline_max_ms: float = 0.0,
        requests: Sized | None = None,
        workers: int = 1,
    ) -> None:
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_delay = max_queue_delay_ms / 1000.0
        self.inline_max_s = inline_max_ms / 1000.0
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnxruntime")
        self._batchers: dict[tuple[str, int], _Batcher] = {}
        self._in_worker = 0  # calls handed to the worker and not yet finished
        self.requests = requests
        self.other_requests = 0  # requests the HTTP server does not see (gRPC calls in flight)

    async def infer(self, model: ServedModel, images: np.ndarray) -> Result:
        if self.max_batch_size > 1 and not model.retired:  # a retired one runs unbatched
            key = (model.name, model.version)
            batcher = self._batchers.get(key)
            if batcher is None or batcher.model is not model:  # new, or reloaded since
                if batcher is not None:
                    batcher.retire()
                batcher = self._batchers[key] = _Batcher(self, model)
            return await batcher.submit(images)
        enqueued = time.perf_counter()
        if self._alone() and model.seconds_per_image * len(images) <= self.inline_max_s:
            self.metrics.calls.labels(model.name, "event_loop").inc()
            outputs = model.runner(images)
            started, finished = enqueued, time.perf_counter()
        else:
            outputs, started, finished = await self._run(model, images)
        self.metrics.batch_size.labels(model.name).observe(len(images))
        return Result(outputs, started - enqueued, finished - started, len(images))

    def _alone(self) -> bool:
        """Whether this call is the only work: none in the worker, and no other request
        received. The server's request tasks count those read but not started yet: requests
        that arrived while the loop was busy are read together, and such a burst must go to
        the worker, where their parsing overlaps the model, not run inline one after another
        (in separate runs at 8 clients: 126-128 requests/s inline, 152-173 through the worker)."""
        if self._in_worker:
            return False
        http = len(self.requests) if self.requests is not None else 0
        return http + self.other_requests <= 1

    async def _run(
        self, model: ServedModel, images: np.ndarray
    ) -> tuple[list[np.ndarray], float, float]:
        def call() -> tuple[list[np.ndarray], float, float]:
            started = time.perf_counter()
            outputs = model.runner(images)
            return outputs, started, time.perf_counter()

        self.metrics.calls.labels(model.name, "worker").inc()
        self._in_worker += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, call)
        finally:
            self._in_worker -= 1

    def retire(self, model: ServedModel) -> None:
        """`model` takes no new requests (unloaded or replaced): its batcher, if any, runs
        what it holds and ends."""
        model.retired = True
        key = (model.name, model.version)
        batcher = self._batchers.get(key)
        if batcher is not None and batcher.model is model:
            del self._batchers[key]
            batcher.retire()

    async def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.task.cancel()
        self.executor.shutdown(wait=True)


class _Batcher:
    """The queue and the collecting task of one model version."""

    def __init__(self, engine: InferenceEngine, model: ServedModel) -> None:
        self.engine = engine
        self.model = model
        limit = engine.max_batch_size
        if model.max_batch_size > 0:
            limit = min(limit, model.max_batch_size)
        self.limit = limit
        self.pending: collections.deque[_Pending] = collections.deque()
        self.retired = False
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, images: np.ndarray) -> Result:
        future = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(images, future, time.perf_counter()))
        self.wakeup.set()
        return await future

    def retire(self) -> None:
        self.retired = True
        self.wakeup.set()

    def _queued(self) -> int:
        return sum(len(p.images) for p in self.pending)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                if self.retired:
                    return
                self.wakeup.clear()
                await self.wakeup.wait()
            deadline = loop.time() + max(
                0.0, self.engine.max_delay - (time.perf_counter() - self.pending[0].enqueued)
            )
            while self._queued() < self.limit and (remaining := deadline - loop.time()) > 0:
                self.wakeup.clear()
                try:
                    await asyncio.wait_for(self.wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self.pending.popleft()]
            size = len(batch[0].images)
            while self.pending and size + len(self.pending[0].images) <= self.limit:
                size += len(self.pending[0].images)
                batch.append(self.pending.popleft())
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        images = batch[0].images if len(batch) == 1 else np.concatenate([p.images for p in batch])
        try:
            outputs, started, finished = await self.engine._run(self.model, images)
        except Exception as exc:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.engine.metrics.batch_size.labels(self.model.name).observe(len(images))
        offset = 0
        for p in batch:
            rows = slice(offset, offset + len(p.images))
            offset += len(p.images)
            if not p.future.done():  # the client may have gone away
                p.future.set_result(
                    Result(
                        [out[rows] for out in outputs],
                        started - p.enqueued,
                        finished - started,
                        len(images),
                    )
                )
