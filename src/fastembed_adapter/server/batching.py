"""Dynamic micro-batching: concurrent requests merged into one encode call on one worker thread.

Requests wait in a bounded FIFO. The batch loop takes the oldest request and, while other
requests are still being read and checked (:meth:`MicroBatcher.arriving`), lets them join until
the batch holds ``max_texts`` texts or ``max_tokens`` tokens or the oldest request has waited
``max_wait`` seconds; a lone request runs at once. The batch runs on a single worker thread (ONNX
Runtime already uses every CPU thread it was given, so a second worker would only oversubscribe
them). Requests arriving while the worker is busy queue up and form the next batch. Each caller
gets its own rows back, in its own order. Requests are grouped by their batch key (the prompt
and what to compute, see :class:`~.outputs.BatchKey`): one encode call per key.

A full queue raises :class:`OverloadedError` (HTTP 429) instead of growing without bound. When a
batch fails, its requests are retried one by one, so one bad request never fails another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import numpy as np

from .errors import NotReadyError, OverloadedError
from .metrics import ServerMetrics

__all__ = ["Arrival", "EncodeFn", "MicroBatcher", "Rows"]

logger = logging.getLogger(__name__)

# One row per text: a float32 array (len(texts), dim), or per text an array of its own shape.
Rows: TypeAlias = "np.ndarray | list[np.ndarray]"
# encode(texts, key) -> rows in the order of texts, run on the worker thread.
EncodeFn = Callable[[list[str], Hashable], Rows]
T = TypeVar("T")


class Arrival:
    """A request between its first byte and :meth:`MicroBatcher.submit`; :meth:`done` once it is queued."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self._batcher: MicroBatcher | None = batcher

    def done(self) -> None:
        """The request is queued or failed: batches stop waiting for it (idempotent)."""
        if self._batcher is not None:
            self._batcher._arrived()
            self._batcher = None


@dataclass(eq=False)
class _Pending:
    texts: list[str]
    tokens: int
    key: Hashable
    future: asyncio.Future[Rows]
    enqueued: float = field(default=0.0)


class MicroBatcher:
    """Merge concurrent :meth:`submit` calls into micro-batches encoded on one worker thread."""

    def __init__(
        self,
        *,
        max_texts: int,
        max_tokens: int,
        max_wait: float,
        max_queue: int,
        metrics: ServerMetrics,
    ) -> None:
        """Set the limits; :meth:`start` begins the batch loop (call it from the event loop)."""
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fea-encode")
        self._encode: EncodeFn | None = None
        self._queue: deque[_Pending] = deque()
        self._queued_texts = 0
        self._queued_tokens = 0
        self._outstanding = 0  # queued + running requests, bounded by max_queue
        self._arriving = 0  # requests being parsed/checked that will submit soon
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def run_in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread (model loading, probes), serialised with batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def start(self, encode: EncodeFn) -> None:
        """Start the batch loop with ``encode`` as the batch function."""
        self._encode = encode
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="fea-microbatcher")

    @contextlib.contextmanager
    def arriving(self) -> Iterator[Arrival]:
        """Mark a request on its way to :meth:`submit`; a batch waits (up to ``max_wait``) only for these."""
        arrival = Arrival(self)
        self._arriving += 1
        try:
            yield arrival
        finally:
            arrival.done()

    def _arrived(self) -> None:
        self._arriving -= 1
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def outstanding(self) -> int:
        """Requests queued or being encoded."""
        return self._outstanding

    async def submit(self, texts: list[str], tokens: int, key: Hashable, arrival: Arrival | None = None) -> Rows:
        """Queue ``texts`` (``tokens`` after truncation) and wait for their rows, in order.

        Args:
            texts: the request's texts.
            tokens: their tokens after truncation (for the ``max_tokens`` limit).
            key: passed to the encode function; requests with equal keys share its calls.
            arrival: marked done once the request is queued.
        """
        if self._task is None or self._wakeup is None:
            raise NotReadyError("The model is not loaded yet; retry shortly.")
        if self._outstanding >= self.max_queue:
            self.metrics.rejected.labels("queue_full").inc()
            raise OverloadedError(
                f"The request queue is full ({self.max_queue} requests queued or running); retry after the "
                "Retry-After delay, add replicas, or raise --max-queue."
            )
        loop = asyncio.get_running_loop()
        item = _Pending(texts, tokens, key, loop.create_future(), loop.time())
        self._outstanding += 1
        self._queue.append(item)
        self._queued_texts += len(texts)
        self._queued_tokens += tokens
        self.metrics.queue_depth.set(len(self._queue))
        if arrival is not None:
            arrival.done()
        self._wakeup.set()
        try:
            return await item.future
        finally:
            self._outstanding -= 1

    async def stop(self) -> None:
        """Stop the loop, fail what is still queued with 503, and let the worker finish its batch."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            item = self._pop()
            if not item.future.done():
                item.future.set_exception(NotReadyError("The server is shutting down; retry on another replica."))
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- the loop ---------------------------------------------------------------------------
    def _pop(self) -> _Pending:
        item = self._queue.popleft()
        self._queued_texts -= len(item.texts)
        self._queued_tokens -= item.tokens
        self.metrics.queue_depth.set(len(self._queue))
        return item

    def _full(self) -> bool:
        return self._queued_texts >= self.max_texts or self._queued_tokens >= self.max_tokens

    async def _collect(self) -> list[_Pending]:
        """Wait for a request, give others until its deadline to join, and take what fits."""
        assert self._wakeup is not None  # set by start()
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].enqueued + self.max_wait
        # Waiting only pays when more requests are on their way; a lone request runs at once.
        while self._arriving and not self._full() and (remaining := deadline - loop.time()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        batch = [self._pop()]  # the oldest request always runs, even when larger than the limits
        texts, tokens = len(batch[0].texts), batch[0].tokens
        while self._queue:
            head = self._queue[0]
            if texts + len(head.texts) > self.max_texts or tokens + head.tokens > self.max_tokens:
                break
            batch.append(self._pop())
            texts += len(head.texts)
            tokens += head.tokens
        now = loop.time()
        for item in batch:
            self.metrics.queue_wait.observe(now - item.enqueued)
        self.metrics.batch_requests.observe(len(batch))
        self.metrics.batch_texts.observe(texts)
        self.metrics.batch_tokens.observe(tokens)
        return [item for item in batch if not item.future.done()]  # skip callers that went away

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            try:
                await self._run_batch(batch)
            except Exception as exc:  # never let the loop die; fail only this batch
                logger.exception("micro-batch failed unexpectedly")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        """Encode each key's group of the batch in one call; on failure retry requests one by one."""
        groups: dict[Hashable, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.key, []).append(item)
        for key, items in groups.items():
            texts = [text for item in items for text in item.texts]
            try:
                rows = await self.run_in_worker(self._call, texts, key)
            except Exception as exc:
                if len(items) == 1:
                    _settle(items[0], exc)
                    continue
                for item in items:  # isolate the request that broke the batch
                    try:
                        _settle(item, await self.run_in_worker(self._call, item.texts, key))
                    except Exception as single_exc:
                        _settle(item, single_exc)
                continue
            start = 0
            for item in items:
                _settle(item, rows[start : start + len(item.texts)])
                start += len(item.texts)

    def _call(self, texts: list[str], key: Hashable) -> Rows:
        assert self._encode is not None  # set by start()
        return self._encode(texts, key)


def _settle(item: _Pending, outcome: Rows | BaseException) -> None:
    if item.future.done():
        return
    if isinstance(outcome, BaseException):
        item.future.set_exception(outcome)
    else:
        item.future.set_result(outcome)
