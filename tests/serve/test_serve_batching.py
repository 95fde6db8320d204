"""The micro-batcher and the service limits, on fake batch functions and body streams (no server)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from facescope.errors import FacescopeError
from facescope.serve.batching import BatchingConfig, MicroBatcher
from facescope.serve.limits import InFlightGate, ServiceError, ServiceLimits, check_content_length, read_body


class RecordingBatch:
    """A batch function returning ``item * 10``, recording its batches; it can stall or refuse an item."""

    def __init__(self, delay_s: float = 0.0, bad: object = None) -> None:
        self.batches: list[list[int]] = []
        self.delay_s, self.bad = delay_s, bad
        self.threads: set[str] = set()

    def __call__(self, items):
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        if self.bad in items:
            raise ValueError(f"item {self.bad} is bad")
        return [item * 10 for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


async def _submit_all(batcher: MicroBatcher, items: list[int], stagger_s: float = 0.0) -> list:
    batcher.start()
    tasks = []
    for item in items:
        tasks.append(asyncio.create_task(batcher.submit(item)))
        await asyncio.sleep(stagger_s)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await batcher.stop()
    return results


def test_concurrent_items_run_in_batches_of_at_most_max_batch_size_on_one_worker_thread() -> None:
    batch = RecordingBatch(delay_s=0.05)
    batcher = MicroBatcher(batch, BatchingConfig(max_batch_size=4, max_wait_s=0.01))
    results = run(_submit_all(batcher, list(range(11))))
    assert [value for value, _ in results] == [i * 10 for i in range(11)]  # each caller gets its own result
    assert sorted(i for b in batch.batches for i in b) == list(range(11))  # each item ran once
    assert max(len(b) for b in batch.batches) == 4 and len(batch.batches) == 3  # 4 + 4 + 3: all queued at once
    assert [size for _, size in results] == [len(b) for b in batch.batches for _ in b]
    assert len(batch.threads) == 1 and batch.threads.pop().startswith("facescope-detect")
    assert batcher.stats.batches == 3 and batcher.stats.items == 11 and batcher.stats.largest == 4


def test_a_lone_item_waits_up_to_max_wait_for_company() -> None:
    batch = RecordingBatch()
    run(_submit_all(MicroBatcher(batch, BatchingConfig(max_batch_size=8, max_wait_s=0.5)), [1, 2], stagger_s=0.05))
    assert batch.batches == [[1, 2]]  # the second came within the first's wait

    batch = RecordingBatch()
    run(_submit_all(MicroBatcher(batch, BatchingConfig(max_batch_size=8, max_wait_s=0.0)), [1, 2], stagger_s=0.05))
    assert batch.batches == [[1], [2]]  # no wait: each alone


def test_a_failing_item_fails_alone() -> None:
    batch = RecordingBatch(bad=3)
    results = run(_submit_all(MicroBatcher(batch, BatchingConfig(max_batch_size=8, max_wait_s=0.05)), [1, 2, 3, 4]))
    assert [r[0] if isinstance(r, tuple) else str(r) for r in results] == [10, 20, "item 3 is bad", 40]
    assert batch.batches[0] == [1, 2, 3, 4] and [1] in batch.batches and [3] in batch.batches  # then one by one


def test_a_cancelled_request_is_dropped_before_its_batch_runs() -> None:
    batch = RecordingBatch(delay_s=0.2)

    async def scenario() -> list:
        batcher = MicroBatcher(batch, BatchingConfig(max_batch_size=1, max_wait_s=0.0))
        batcher.start()
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.05)  # 1 is running
        second, third = asyncio.create_task(batcher.submit(2)), asyncio.create_task(batcher.submit(3))
        await asyncio.sleep(0.01)
        second.cancel()  # its client went away while it waited
        results = await asyncio.gather(first, third)
        await batcher.stop()
        return results

    assert run(scenario()) == [(10, 1), (30, 1)]
    assert batch.batches == [[1], [3]]


def test_stop_finishes_every_queued_item() -> None:
    batch = RecordingBatch(delay_s=0.02)

    async def scenario() -> list:
        batcher = MicroBatcher(batch, BatchingConfig(max_batch_size=2, max_wait_s=0.0))
        batcher.start()
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(7)]
        await asyncio.sleep(0)
        await batcher.stop()  # returns once the queue is empty
        assert all(task.done() for task in tasks)
        return [task.result()[0] for task in tasks]

    assert run(scenario()) == [i * 10 for i in range(7)]


@pytest.mark.parametrize("options", [{"max_batch_size": 0}, {"max_wait_s": -1.0}, {"max_wait_s": float("nan")}])
def test_batching_options_out_of_range_are_refused(options: dict) -> None:
    with pytest.raises(FacescopeError):
        BatchingConfig(**options)


# ---------------------------------------------------------------- limits


async def _chunks(sizes: list[int], pause_s: float = 0.0):
    for size in sizes:
        await asyncio.sleep(pause_s)
        yield b"x" * size


def test_read_body_keeps_bodies_within_the_limit() -> None:
    limits = ServiceLimits(max_body_bytes=100)
    assert run(read_body(_chunks([40, 60]), limits)) == b"x" * 100


def test_read_body_stops_at_the_first_chunk_past_the_limit() -> None:
    limits = ServiceLimits(max_body_bytes=100)
    pulled = []

    async def counted():
        async for chunk in _chunks([60, 60, 10**6, 10**6]):
            pulled.append(len(chunk))
            yield chunk

    with pytest.raises(ServiceError) as info:
        run(read_body(counted(), limits))
    assert info.value.status == 413 and "over the limit of 100 bytes" in info.value.message
    assert pulled == [60, 60]  # the megabyte chunks were never read


def test_read_body_of_a_stalled_client_is_408() -> None:
    limits = ServiceLimits(read_timeout_s=0.2)
    with pytest.raises(ServiceError) as info:
        run(read_body(_chunks([10, 10], pause_s=5.0), limits))
    assert info.value.status == 408 and "within 0.2 s" in info.value.message


def test_content_length_over_the_limit_is_413_before_reading() -> None:
    limits = ServiceLimits(max_body_bytes=1000)
    check_content_length("1000", limits)
    check_content_length(None, limits)
    with pytest.raises(ServiceError) as info:
        check_content_length("104857600", limits)
    assert info.value.status == 413 and "104,857,600 bytes" in info.value.message
    with pytest.raises(ServiceError) as info:
        check_content_length("ten", limits)
    assert info.value.status == 400


def test_the_gate_admits_max_in_flight_then_503_with_retry_after() -> None:
    gate = InFlightGate(ServiceLimits(max_in_flight=2, retry_after_s=3))
    with gate.admit(), gate.admit():
        assert gate.count == 2
        with pytest.raises(ServiceError) as info, gate.admit():
            pass
        assert info.value.status == 503 and info.value.retry_after == 3
    assert gate.count == 0
    gate.draining = True
    with pytest.raises(ServiceError) as info, gate.admit():
        pass
    assert info.value.status == 503 and "shutting down" in info.value.message


@pytest.mark.parametrize(
    "options", [{"max_body_bytes": 0}, {"max_in_flight": 0}, {"max_pixels": -5}, {"read_timeout_s": 0}, {"retry_after_s": 0}]
)
def test_limits_out_of_range_are_refused(options: dict) -> None:
    with pytest.raises(FacescopeError):
        ServiceLimits(**options)
