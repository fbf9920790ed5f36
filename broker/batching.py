"""Group commit: what concurrent handlers submit while one batch runs becomes the next batch.

A consumer handles up to its prefetch of deliveries at once; committing each one in a
transaction of its own costs a disk flush per message and, on SQLite, a fight for the
single write lock. A ``Batcher`` gathers the items its callers submit, runs them through
one blocking ``work`` call (one transaction) in a worker thread, and hands each caller
its own outcome. Only one batch runs at a time, so under load the next batch is simply
everything that arrived meanwhile (no timer, no added latency when idle), and each caller
learns its outcome only after ``work`` returned: after the commit.

A batcher given ``inline`` (the HTTP API's) runs a batch on the event loop itself when
SQLite's write gate is free: handing it to the thread costs the interpreter lock changing
hands at every statement while the loop's thread is busy with requests (at 200 requests a
second a request's wait for its batch was 1.6-2.0 ms at the median on the loop against
2.6-3.0 in the thread, and 7-9 ms against 16-22 at the 99th percentile; see
docs/performance.md). With the gate taken first, the batch cannot wait for another writer
while the loop is blocked; if another writer holds it, or on PostgreSQL (a network round
trip a statement), the batch runs in the thread. The AMQP consumers' batchers do not:
their loop also drives the relay's publishing and the deliveries of every queue, and
blocking it measured slower.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from broker.exceptions import TransportError
from broker.logging import get_logger

__all__ = ["Batcher", "together_else_each"]

T = TypeVar("T")
R = TypeVar("R")

_log = get_logger("batching")


def together_else_each(
    items: Sequence[T],
    together: Callable[[Sequence[T]], Sequence[R]],
    alone: Callable[[T], R],
    *,
    name: str,
) -> list[R | BaseException]:
    """The work function of a ``Batcher``: all items in one transaction, else one by one.

    A failure of the batch (a dedup race with another process, a fault in one item) must
    not hold up the others, so each is then tried alone and succeeds or fails on its own
    account. A database that is unavailable fails every item at once: trying them one by
    one would only wait again per item.

    Args:
        items: the batch.
        together: stores the whole batch in one transaction; one outcome per item.
        alone: stores one item in a transaction of its own.
        name: names the batch in logs.

    Returns:
        Per item, in order: its outcome, or the exception that stopped it.
    """
    try:
        return list(together(items))
    except TransportError as exc:
        return [TransportError(str(exc)) for _ in items]
    except Exception as exc:  # noqa: BLE001 - isolated below, item by item
        _log.info("batch_split", batcher=name, size=len(items), error=type(exc).__name__)
    outcomes: list[R | BaseException] = []
    for item in items:
        try:
            outcomes.append(alone(item))
        except Exception as exc:  # noqa: BLE001 - this item's own outcome
            outcomes.append(exc)
    return outcomes


class Batcher(Generic[T, R]):
    """Runs ``work`` over batches of submitted items, one batch at a time, in a thread.

    ``work`` receives the items in submission order and returns one outcome per item, in
    the same order: a result, or an exception instance, which ``submit`` raises to that
    item's caller alone. An exception escaping ``work`` is raised to every caller of the
    batch.
    """

    def __init__(
        self,
        work: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        max_size: int = 64,
        name: str = "batch",
        inline: Callable[[], AbstractContextManager[object] | None] | None = None,
    ) -> None:
        """Prepare a batcher.

        Args:
            work: blocking; processes a batch (one transaction) and returns the outcomes.
            max_size: the most items given to one ``work`` call.
            name: names the batcher in logs.
            inline: asked before each batch; a held context (the write gate, from
                ``broker.db.gate_if_free``) runs the batch on the event loop inside it,
                None runs it in the batcher's thread. None: always the thread.
        """
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._work = work
        self._max_size = max_size
        self._name = name
        self._inline = inline
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        # A thread of its own: in the shared default pool the commit would queue behind
        # whatever else waits there (translating and sealing the next messages, say).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def close(self) -> None:
        """Let the worker thread end once the batch it runs, if any, is done."""
        self._thread.shutdown(wait=False)

    async def submit(self, item: T) -> R:
        """Add ``item`` to the next batch and wait for its outcome.

        Raises:
            BaseException: the exception ``work`` gave for this item, or raised for the batch.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._runner is None or self._runner.done():
            # A context of its own: a batch run on the loop must not log under the
            # request or delivery that happened to start the runner.
            self._runner = asyncio.create_task(
                self._drain(), name=f"{self._name} batcher", context=contextvars.Context()
            )
        return await future

    async def _drain(self) -> None:
        while self._pending:
            taken = self._pending[: self._max_size]
            del self._pending[: self._max_size]
            # A caller that gave up (its delivery was abandoned at shutdown) is not processed:
            # the message returns to its queue and is handled again later.
            live = [(item, future) for item, future in taken if not future.done()]
            if live:
                await self._run([item for item, _ in live], [future for _, future in live])

    async def _outcomes(self, items: list[T]) -> Sequence[R | BaseException]:
        """``work`` over the batch: on the loop if ``inline`` gives a held gate, else in
        the batcher's thread (also if asking for the gate failed: the batch meets the
        failure, if it lasts, where it takes the gate itself)."""
        held = None
        if self._inline is not None:
            try:
                held = self._inline()
            except Exception as exc:  # noqa: BLE001 - the thread's way is always open
                _log.warning(
                    "batch_inline_unavailable", batcher=self._name, error=type(exc).__name__
                )
        if held is None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._work, items)
        with held:
            return self._work(items)

    async def _run(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            outcomes = await self._outcomes(items)
        except asyncio.CancelledError:
            # Shutting down: nobody will hear of this batch, so its callers must not wait.
            for future in futures + [future for _, future in self._pending]:
                future.cancel()
            self._pending.clear()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            _log.warning(
                "batch_failed", batcher=self._name, size=len(items), error=type(exc).__name__
            )
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        if len(outcomes) != len(items):
            error = RuntimeError(f"{self._name}: {len(outcomes)} outcomes for {len(items)} items")
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, outcome in zip(futures, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
