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

Dynamic batching (off by default, server-wide with `max_batch_size`; per model, as in Triton,
for a model whose config.pbtxt has `dynamic_batching { }` or that was completed from its graph
with a batch dimension): requests for the same model version that arrive within
`max_queue_delay_ms` of the first waiting one, up to the batch limit (the server's and the
model's max_batch_size, the smaller), are concatenated into one call (each input along its
batch dimension) and the outputs are split back in order. Only models with a batch dimension
batch, and only requests whose tensors agree in every other dimension go together. A request
is never split, and a request larger than the batch limit runs on its own. While a batch runs,
the next one fills.
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
    inputs: tuple[np.ndarray, ...]
    future: asyncio.Future
    enqueued: float

    @property
    def size(self) -> int:
        return len(self.inputs[0])

    def joins(self, first: _Pending) -> bool:
        """Whether this request's tensors concatenate with `first`'s."""
        pairs = zip(self.inputs, first.inputs, strict=True)
        return all(a.shape[1:] == b.shape[1:] for a, b in pairs)


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

    async def infer(self, model: ServedModel, *inputs: np.ndarray) -> Result:
        """Runs the model on its inputs, in its signature's order."""
        if self.batch_limit(model) > 1:
            key = (model.name, model.version)
            batcher = self._batchers.get(key)
            if batcher is None or batcher.model is not model:  # new, or reloaded since
                if batcher is not None:
                    batcher.retire()
                batcher = self._batchers[key] = _Batcher(self, model)
            return await batcher.submit(inputs)
        enqueued = time.perf_counter()
        size = len(inputs[0]) if model.max_batch_size > 0 and inputs[0].ndim else 1
        if self._alone() and model.seconds_per_image * size <= self.inline_max_s:
            self.metrics.calls.labels(model.name, "event_loop").inc()
            outputs = model.runner(*inputs)
            started, finished = enqueued, time.perf_counter()
        else:
            outputs, started, finished = await self._run(model, inputs)
        self.metrics.batch_size.labels(model.name).observe(size)
        return Result(outputs, started - enqueued, finished - started, size)

    def batch_limit(self, model: ServedModel) -> int:
        """How many items a call of `model` may batch; 0: it runs each request as it comes."""
        if model.max_batch_size < 1 or model.retired:  # a retired one runs unbatched
            return 0
        if self.max_batch_size > 1:
            return min(self.max_batch_size, model.max_batch_size)
        return model.max_batch_size if model.signature.dynamic_batching else 0

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
        self, model: ServedModel, inputs: tuple[np.ndarray, ...]
    ) -> tuple[list[np.ndarray], float, float]:
        def call() -> tuple[list[np.ndarray], float, float]:
            started = time.perf_counter()
            outputs = model.runner(*inputs)
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
        self.limit = engine.batch_limit(model)
        self.pending: collections.deque[_Pending] = collections.deque()
        self.retired = False
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, inputs: tuple[np.ndarray, ...]) -> Result:
        future = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(inputs, future, time.perf_counter()))
        self.wakeup.set()
        return await future

    def retire(self) -> None:
        self.retired = True
        self.wakeup.set()

    def _queued(self) -> int:
        return sum(p.size for p in self.pending)

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
            await self._run(self._take())

    def _take(self) -> list[_Pending]:
        """The first waiting request and those after it that fit beside it (the same shapes
        beyond the batch, within the limit), in arrival order; the rest wait for the next."""
        batch = [self.pending.popleft()]
        size, left = batch[0].size, collections.deque()
        while self.pending:
            waiting = self.pending.popleft()
            if size + waiting.size <= self.limit and waiting.joins(batch[0]):
                size += waiting.size
                batch.append(waiting)
            else:
                left.append(waiting)
        self.pending.extendleft(reversed(left))
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            parts = zip(*(p.inputs for p in batch), strict=True)
            inputs = tuple(np.concatenate(tensors) for tensors in parts)
        size = len(inputs[0])
        try:
            outputs, started, finished = await self.engine._run(self.model, inputs)
        except Exception as exc:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.engine.metrics.batch_size.labels(self.model.name).observe(size)
        offset = 0
        for p in batch:
            rows = slice(offset, offset + p.size)
            offset += p.size
            if not p.future.done():  # the client may have gone away
                p.future.set_result(
                    Result(
                        [out[rows] for out in outputs],
                        started - p.enqueued,
                        finished - started,
                        size,
                    )
                )
