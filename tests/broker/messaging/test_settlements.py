"""Acks in ``multiple`` runs that never reach past a delivery still open (pure logic).

The consumer's tests run the same class against the real RabbitMQ (test_consumer.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelInvalidStateError

from broker.messaging.settlements import Settlements


class _Channel:
    """Records the settlement frames a channel would send."""

    def __init__(self, *, closed: bool = False) -> None:
        self.frames: list[tuple[Any, ...]] = []
        self.closed = closed
        #: While clear, queuing an ack waits (as when the write queue is full).
        self.writable = asyncio.Event()
        self.writable.set()

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        self._check(wait)
        await self.writable.wait()
        self.frames.append(("ack", tag, multiple))

    async def basic_nack(self, tag: int, requeue: bool = True, wait: bool = True) -> None:
        self._check(wait)
        await self.writable.wait()
        self.frames.append(("nack", tag, requeue))

    async def basic_reject(self, tag: int, requeue: bool = True, wait: bool = True) -> None:
        self._check(wait)
        self.frames.append(("reject", tag, requeue))

    def _check(self, wait: bool) -> None:
        assert wait is False
        if self.closed:
            raise ChannelInvalidStateError("closed")


def _tracking(*tags: int, closed: bool = False) -> tuple[Settlements, _Channel]:
    channel = _Channel(closed=closed)
    settlements = Settlements(cast(AbstractChannel, channel), queue="q")
    for tag in tags:
        settlements.delivered(tag)
    return settlements, channel


async def _round() -> None:
    """Let the loop run what the acks of this round scheduled."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_acks_of_one_round_go_out_as_one_multiple_ack() -> None:
    settlements, channel = _tracking(1, 2, 3, 4, 5)
    for tag in (2, 1, 3, 5, 4):
        settlements.ack(tag)
    assert channel.frames == []  # nothing yet: the others of the round may still ack
    await _round()
    assert channel.frames == [("ack", 5, True)]
    assert settlements.open == 0


async def test_a_delivery_still_open_is_never_covered_by_a_multiple_ack() -> None:
    settlements, channel = _tracking(1, 2, 3, 4, 5)
    for tag in (1, 2, 4, 5):
        settlements.ack(tag)
    await _round()
    # 1-2 together; 4 and 5 one by one, so that 3 (still being handled) stays open.
    assert channel.frames == [("ack", 2, True), ("ack", 4, False), ("ack", 5, False)]
    assert settlements.open == 1
    settlements.ack(3)
    await _round()
    assert channel.frames[3:] == [("ack", 3, True)]
    assert settlements.open == 0


async def test_nacks_and_rejects_go_at_once_and_leave_the_run_to_the_acks() -> None:
    settlements, channel = _tracking(1, 2, 3, 4)
    settlements.ack(1)
    await settlements.nack(2)
    await settlements.reject(3)
    settlements.ack(4)
    assert channel.frames == [("nack", 2, True), ("reject", 3, False)]
    await _round()
    # 2 and 3 are settled already: the broker's run up to 4 holds 1 and 4 alone.
    assert channel.frames[2:] == [("ack", 4, True)]
    assert settlements.open == 0


async def test_a_delivery_first_open_then_failed_is_nacked_alone() -> None:
    settlements, channel = _tracking(7, 8, 9)
    settlements.ack(8)
    settlements.ack(9)
    await _round()
    assert channel.frames == [("ack", 8, False), ("ack", 9, False)]
    await settlements.nack(7)
    assert channel.frames[2:] == [("nack", 7, True)]
    await _round()
    assert channel.frames[3:] == []
    assert settlements.open == 0


async def test_an_ack_given_while_the_last_ones_wait_to_be_queued_is_sent_too() -> None:
    settlements, channel = _tracking(1, 2)
    channel.writable.clear()
    settlements.ack(1)
    await _round()  # the ack of 1 waits for room in the connection's write queue
    settlements.ack(2)
    channel.writable.set()
    await _round()
    assert channel.frames == [("ack", 1, True), ("ack", 2, True)]
    assert settlements.open == 0


async def test_a_nack_waiting_to_be_queued_stops_a_run_like_an_open_delivery() -> None:
    # The write queue is full: the nack of 3 waits to be queued. A multiple ack up to 5
    # queued ahead of it would settle 3 at the broker (acked, not requeued: lost).
    settlements, channel = _tracking(3, 5)
    channel.writable.clear()
    nacking = asyncio.create_task(settlements.nack(3))
    await _round()
    settlements.ack(5)
    await _round()
    channel.writable.set()
    await nacking
    await settlements.flush()
    assert sorted(channel.frames) == [("ack", 5, False), ("nack", 3, True)]
    assert settlements.open == 0


async def test_flush_sends_what_is_waiting() -> None:
    settlements, channel = _tracking(1, 2)
    settlements.ack(1)
    settlements.ack(2)
    await settlements.flush()
    assert channel.frames == [("ack", 2, True)]
    await settlements.flush()  # nothing more to send
    assert channel.frames == [("ack", 2, True)]


async def test_settling_a_delivery_that_is_not_open_is_a_fault() -> None:
    settlements, _ = _tracking(1)
    with pytest.raises(ValueError, match="delivery 2 is not open"):
        settlements.ack(2)
    with pytest.raises(ValueError, match="delivery 2 is not open"):
        await settlements.nack(2)
    with pytest.raises(ValueError, match="delivery 2 is not open"):
        await settlements.reject(2)
    settlements.ack(1)
    with pytest.raises(ValueError, match="delivery 1 is not open"):
        settlements.ack(1)
    with pytest.raises(ValueError, match="delivery 1 is not open"):
        await settlements.nack(1)
    await settlements.flush()


async def test_a_closed_channel_loses_the_acks_quietly() -> None:
    settlements, channel = _tracking(1, 2, closed=True)
    settlements.ack(1)
    settlements.ack(2)
    await settlements.flush()  # the broker requeues them itself: no exception
    assert channel.frames == []
    assert settlements.open == 0
