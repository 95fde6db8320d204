"""Micro-batching: concurrent requests become one call of a batch function on a worker thread.

Requests put their item on an :class:`asyncio.Queue` and await a future. One collector task takes
the first waiting item, then more until ``max_batch_size`` items or ``max_wait_s`` after the first,
and runs the batch function on the single worker thread (the event loop stays free to read and
answer other requests meanwhile). While a batch runs, new requests queue up, so under load the next
batch is full at once and ``max_wait_s`` only matters when traffic is light: it is the most a lone
request waits for company.

A batch function failure is isolated: the items of a failed batch are run again one by one, so only
the item at fault gets the exception. An item whose requester went away (its future was cancelled)
is dropped before the batch runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from facescope.errors import FacescopeError
from facescope.inference.validate import check_positive_int

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_MAX_WAIT_S = 0.005


@dataclass(frozen=True)
class BatchingConfig:
    """``max_batch_size`` items per call at most; a lone item waits at most ``max_wait_s`` for others."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_s: float = DEFAULT_MAX_WAIT_S

    def __post_init__(self) -> None:
        check_positive_int("max_batch_size", self.max_batch_size)
        if not (0.0 <= float(self.max_wait_s) < float("inf")):
            raise FacescopeError(f"max_wait_s must be a number of seconds >= 0, got {self.max_wait_s!r}")


@dataclass
class BatchStats:
    """Counters since start: batches run, items run, largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0


class MicroBatcher(Generic[Item, Result]):
    """Runs ``run_batch(items) -> results`` (same length, same order) on one worker thread over
    the items submitted concurrently. :meth:`start` and :meth:`submit` run on the event loop."""

    def __init__(self, run_batch: Callable[[Sequence[Item]], Sequence[Result]], config: BatchingConfig) -> None:
        self.run_batch = run_batch
        self.config = config
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[tuple[Result, int]]]] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running = 0  # items in the batch the worker is running

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def running(self) -> int:
        """Items of the batch being run."""
        return self._running

    def start(self) -> None:
        """Create the queue, the worker thread and the collector task on the running loop."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facescope-detect")
        self._collector = asyncio.get_running_loop().create_task(self._collect(), name="facescope-batcher")

    async def submit(self, item: Item) -> tuple[Result, int]:
        """Queue ``item``; returns its result and the size of the batch it ran in."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[tuple[Result, int]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def stop(self) -> None:
        """Finish every queued item, then stop the collector and the worker thread."""
        if self._queue is None or self._collector is None or self._executor is None:
            return
        await self._queue.join()
        self._collector.cancel()
        try:
            await self._collector
        except asyncio.CancelledError:
            pass
        self._executor.shutdown(wait=True)
        self._queue = self._collector = self._executor = None

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.config.max_wait_s
            while len(batch) < self.config.max_batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            try:
                await self._run(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _run(self, batch: list[tuple[Item, asyncio.Future[tuple[Result, int]]]]) -> None:
        live = [(item, future) for item, future in batch if not future.done()]  # requesters still waiting
        if not live:
            return
        loop = asyncio.get_running_loop()
        self._running = len(live)
        try:
            outcomes = await loop.run_in_executor(self._executor, _run_isolated, self.run_batch, [item for item, _ in live])
        finally:
            self._running = 0
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        for (_, future), (ok, value) in zip(live, outcomes):
            if future.done():  # cancelled while its batch ran
                continue
            if ok:
                future.set_result((value, len(live)))
            else:
                future.set_exception(value)


def _run_isolated(run_batch: Callable[[Sequence[Any]], Sequence[Any]], items: list[Any]) -> list[tuple[bool, Any]]:
    """``(True, result)`` per item; when the batch raises, each item alone, ``(False, exception)`` for failures."""
    try:
        results = list(run_batch(items))
    except Exception as exc:  # noqa: BLE001 - handed to the requesters' futures
        if len(items) == 1:
            return [(False, exc)]
        return [outcome for item in items for outcome in _run_isolated(run_batch, [item])]
    if len(results) != len(items):
        error = RuntimeError(f"the batch function returned {len(results)} results for {len(items)} items")
        return [(False, error)] * len(items)
    return [(True, result) for result in results]
