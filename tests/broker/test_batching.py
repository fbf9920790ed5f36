"""Group commit: items submitted while a batch runs form the next batch; outcomes per item."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Iterator, Sequence

import pytest

from broker.batching import Batcher

#: A request's context variable, as the API's log fields are.
_REQUEST: contextvars.ContextVar[str | None] = contextvars.ContextVar("request", default=None)


class Recorder:
    """A blocking ``work`` that records its batches and can be held at the gate."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.entered.set()
        self.gate.wait(timeout=5)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def _wait_entered(recorder: Recorder) -> None:
    await asyncio.to_thread(recorder.entered.wait, 5)
    recorder.entered.clear()


async def test_items_that_arrive_during_a_batch_form_the_next_one() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[int, int] = Batcher(recorder, name="test")
    first = asyncio.create_task(batcher.submit(0))
    await _wait_entered(recorder)
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 4, 6)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [20, 40, 60]
    assert recorder.batches == [[0], [2, 4, 6]]


async def test_each_caller_gets_its_own_outcome() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder, name="test")
    results = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert results[0] == 0
    assert results[2] == 20
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "odd 1"
    assert isinstance(results[3], ValueError)
    assert str(results[3]) == "odd 3"


async def test_a_batch_is_never_larger_than_max_size() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[int, int] = Batcher(recorder, max_size=2, name="test")
    first = asyncio.create_task(batcher.submit(0))
    await _wait_entered(recorder)
    rest = [asyncio.create_task(batcher.submit(n)) for n in (2, 4, 6, 8, 10)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    await asyncio.gather(first, *rest)
    assert recorder.batches == [[0], [2, 4], [6, 8], [10]]


async def test_a_failure_of_the_whole_batch_reaches_every_caller() -> None:
    def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("database gone")

    batcher: Batcher[int, int] = Batcher(broken, name="test")
    results = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_too_few_outcomes_is_an_error_for_every_caller() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: [1], name="test")
    results = await asyncio.gather(*(batcher.submit(n) for n in range(2)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_caller_that_gave_up_before_its_batch_is_not_processed() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[int, int] = Batcher(recorder, name="test")
    first = asyncio.create_task(batcher.submit(0))
    await _wait_entered(recorder)
    abandoned = asyncio.create_task(batcher.submit(2))
    kept = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0.01)
    abandoned.cancel()
    recorder.gate.set()
    assert await first == 0
    assert await kept == 40
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert recorder.batches == [[0], [4]]


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        Batcher(lambda items: [], max_size=0)


class Gate:
    """An ``inline`` stand-in: gives a held context while ``free``, counting entries."""

    def __init__(self, free: bool) -> None:
        self.free = free
        self.entered = 0
        self.exited = 0

    def __call__(self) -> contextlib.AbstractContextManager[object] | None:
        return self._held() if self.free else None

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        self.entered += 1
        try:
            yield
        finally:
            self.exited += 1


async def test_a_batch_runs_on_the_loop_inside_the_gate_when_it_is_free() -> None:
    threads: list[threading.Thread] = []

    def work(items: Sequence[int]) -> list[int | BaseException]:
        threads.append(threading.current_thread())
        return [i + 1 for i in items]

    gate = Gate(free=True)
    batcher: Batcher[int, int] = Batcher(work, name="test", inline=gate)
    assert await batcher.submit(1) == 2
    assert threads == [threading.current_thread()]
    assert (gate.entered, gate.exited) == (1, 1)
    # Taken by another writer: the batch goes to the batcher's thread and waits there.
    gate.free = False
    assert await batcher.submit(2) == 3
    assert threads[1] is not threading.current_thread()
    assert (gate.entered, gate.exited) == (1, 1)
    batcher.close()


async def test_a_batch_that_fails_on_the_loop_lets_the_gate_go_and_tells_its_callers() -> None:
    def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("database gone")

    gate = Gate(free=True)
    batcher: Batcher[int, int] = Batcher(broken, name="test", inline=gate)
    with pytest.raises(RuntimeError, match="database gone"):
        await batcher.submit(1)
    assert (gate.entered, gate.exited) == (1, 1)


async def test_a_batch_does_not_run_under_the_context_of_whoever_started_it() -> None:
    seen: list[object] = []

    def work(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(_REQUEST.get())
        return list(items)

    batcher: Batcher[int, int] = Batcher(work, name="test", inline=Gate(free=True))
    _REQUEST.set("request-1")
    await batcher.submit(1)
    assert seen == [None]


async def test_a_gate_that_cannot_be_asked_for_sends_the_batch_to_the_thread() -> None:
    threads: list[threading.Thread] = []

    def work(items: Sequence[int]) -> list[int | BaseException]:
        threads.append(threading.current_thread())
        return list(items)

    def broken() -> contextlib.AbstractContextManager[object] | None:
        raise OSError("lock file unavailable")

    batcher: Batcher[int, int] = Batcher(work, name="test", inline=broken)
    assert await batcher.submit(5) == 5
    assert len(threads) == 1
    assert threads[0] is not threading.current_thread()
    batcher.close()
