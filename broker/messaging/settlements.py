"""The deliveries of one channel that are not yet settled, and acks sent in runs.

Acking deliveries one by one costs a frame, a write and the AMQP client's work each; a
batch of deliveries handled together (a group commit) is acked together instead: the
acks its handlers give while the event loop is in one round are sent as ONE ``multiple``
ack, which settles every delivery of the channel up to its tag.

That is only right if every delivery up to that tag was acked by its handler: a
delivery still being handled (or held through an outage) must not be settled with the
others, or its message would be lost if the handler then failed. So the channel's
open deliveries are kept in tag order; a ``multiple`` ack covers only the run of acked
deliveries at the front, up to the first one still open, and the acks beyond that one
are sent one by one. Nacks and rejects are sent at once, one by one; a delivery being
nacked or rejected stops a run like an open one until its frame is queued, since the
connection's write queue is bounded and a run queued ahead of it would settle it.

Every settlement is queued for the connection's writer without waiting for it to reach
the socket (``wait=False``): waiting cost a loop round a message and told nothing more,
since the broker never confirms a settlement; one lost with the connection means a
redelivery either way, which the handlers' inbox makes harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiormq.abc import AbstractChannel

from broker.logging import get_logger
from broker.messaging.connection import AMQP_ERRORS

__all__ = ["Settlements"]

_log = get_logger("messaging.settlements")

# A delivery's state while it is open: being handled, acked (not yet sent), or being
# nacked or rejected (its frame not yet queued).
_HANDLING, _ACKED, _SETTLING = 0, 1, 2


class Settlements:
    """One channel's open deliveries; acks go out in ``multiple`` runs, never past an open one.

    Use from the event loop that runs the channel: ``delivered`` as a delivery arrives
    (before anything else of it runs), then exactly one of ``ack``, ``nack`` or
    ``reject`` for it, and ``flush`` before the channel is closed.
    """

    def __init__(self, channel: AbstractChannel, *, queue: str = "") -> None:
        """Track ``channel``'s deliveries; ``queue`` names them in logs."""
        self._channel = channel
        self._queue = queue
        # Delivery tag → its state. Tags arrive in increasing order and a dict keeps
        # insertion order: the first key is the lowest.
        self._open: dict[int, int] = {}
        self._acked = 0
        self._sending: asyncio.Task[None] | None = None

    @property
    def open(self) -> int:
        """Deliveries not yet settled on the broker (acked ones waiting to be sent included)."""
        return len(self._open)

    def delivered(self, tag: int) -> None:
        """A delivery arrived; call before its handler runs."""
        self._open[tag] = _HANDLING

    def ack(self, tag: int) -> None:
        """Its effect is durable: ack it with the others acked in this round of the loop."""
        self._claim(tag, _ACKED)
        self._acked += 1
        if self._sending is None:
            # A task runs after what is already due in this round of the loop: the other
            # handlers of the same batch ack before it sends.
            self._sending = asyncio.get_running_loop().create_task(self._send_soon())

    async def nack(self, tag: int) -> None:
        """Back to its queue (counts as a delivery against the queue's limit), at once."""
        await self._at_once(tag, self._channel.basic_nack, requeue=True)

    async def reject(self, tag: int) -> None:
        """Not requeued: the broker dead-letters it, at once."""
        await self._at_once(tag, self._channel.basic_reject, requeue=False)

    async def _at_once(
        self, tag: int, send: Callable[..., Awaitable[None]], *, requeue: bool
    ) -> None:
        # Open until its frame is queued: a run must not be queued ahead of it.
        self._claim(tag, _SETTLING)
        try:
            await send(tag, requeue=requeue, wait=False)
        finally:
            del self._open[tag]

    async def flush(self) -> None:
        """Send the acks not yet sent (before the channel is closed)."""
        if self._sending is not None and not self._sending.done():
            await asyncio.shield(self._sending)
        await self._send()

    def _claim(self, tag: int, state: int) -> None:
        if self._open.get(tag) != _HANDLING:
            raise ValueError(f"delivery {tag} is not open on this channel")
        self._open[tag] = state

    async def _send_soon(self) -> None:
        try:
            # Queuing a frame can wait (the connection's write queue is bounded); acks
            # given meanwhile are sent by this task too, before it ends.
            while self._acked:
                await self._send()
        finally:
            self._sending = None

    async def _send(self) -> None:
        if not self._acked:
            return
        self._acked = 0
        # The run of acked deliveries at the front: one multiple ack settles them all.
        last: int | None = None
        for tag, state in self._open.items():
            if state != _ACKED:
                break
            last = tag
        if last is not None:
            for tag in list(self._open):
                del self._open[tag]
                if tag == last:
                    break
        # Acked behind a delivery still open: one by one, so that the open one is not
        # settled with them and they do not hold the prefetch window meanwhile.
        singles = [tag for tag, state in self._open.items() if state == _ACKED]
        for tag in singles:
            del self._open[tag]
        try:
            if last is not None:
                await self._channel.basic_ack(last, multiple=True, wait=False)
            for tag in singles:
                await self._channel.basic_ack(tag, wait=False)
        except AMQP_ERRORS as exc:
            # The channel is gone: the broker has requeued what it had not been told of.
            _log.warning("ack_failed", queue=self._queue, error=type(exc).__name__)
