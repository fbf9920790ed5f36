"""Delivery under random handler outcomes and a dropped connection: nothing is ever lost.

Each message gets a seeded script of outcomes, one per delivery attempt (success, retry
later, reject, crash). Without faults, where each message ends up is predicted exactly
from its script and the delivery limit; with the connection cut mid-run, the invariant
is that every message is either handled successfully or sits in the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from broker.messaging import (
    Backoff,
    Consumer,
    Publisher,
    ReceivedMessage,
    RejectMessage,
    RetryLater,
    list_dead_letters,
)
from broker.settings import AmqpSettings
from tests.broker.messaging.conftest import disclosure, eventually, queue_depth

pytestmark = pytest.mark.rabbitmq

QUEUE = "mash.E06000040"
OUTCOMES = ("ok", "retry", "reject", "crash")
WEIGHTS = (0.55, 0.3, 0.05, 0.1)


def scripts(seed: int, count: int, attempts: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {f"m{seed}-{n}": rng.choices(OUTCOMES, WEIGHTS, k=attempts) for n in range(count)}


def predicted(script: list[str], delivery_limit: int) -> str:
    """Where a message ends: ``acked``, or the dead-letter reason."""
    for outcome in script[: delivery_limit + 1]:
        if outcome == "ok":
            return "acked"
        if outcome == "reject":
            return "scripted reject"
    return "delivery_limit"


async def run_scripts(settings: AmqpSettings, admin, plan: dict[str, list[str]], cut=None):
    acked: Counter[str] = Counter()

    async def handler(message: ReceivedMessage) -> None:
        message_id = message.message_id or ""
        outcome = plan[message_id][min(message.delivery_count, len(plan[message_id]) - 1)]
        await asyncio.sleep(random.random() / 200)  # handlers finish out of order
        match outcome:
            case "retry":
                raise RetryLater("scripted retry")
            case "reject":
                raise RejectMessage("scripted reject")
            case "crash":
                raise OSError("scripted crash")
        acked[message_id] += 1

    async with Publisher(settings) as publisher:
        results = await publisher.publish_batch(
            [disclosure(message_id, source="tvp-police") for message_id in plan]
        )
    assert all(r.confirmed for r in results)

    consumer = Consumer(settings, QUEUE, handler, prefetch=8, backoff=Backoff(initial=0.05))
    task = asyncio.create_task(consumer.run())
    try:
        if cut is not None:
            await eventually(lambda: sum(acked.values()) >= len(plan) // 3)
            cut()

        async def drained():
            return await queue_depth(admin, QUEUE) == 0 and consumer.in_flight == 0

        await eventually(drained, within=30)
        await asyncio.sleep(0.2)  # the last acks and dead letters settle
    finally:
        await consumer.stop()
        await task
    report = await list_dead_letters(settings, QUEUE)
    return acked, {letter.message_id: letter.reason for letter in report.letters}, report.total


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_each_message_ends_where_its_script_says(amqp, declared, admin, seed):
    plan = scripts(seed, 40, amqp.delivery_limit + 1)
    acked, dead, total = await run_scripts(amqp, admin, plan)

    expected = {m: predicted(script, amqp.delivery_limit) for m, script in plan.items()}
    assert {m for m, where in expected.items() if where == "acked"} == set(acked)
    assert all(count == 1 for count in acked.values())
    assert dead == {m: where for m, where in expected.items() if where != "acked"}
    assert total == len(dead)


async def test_no_message_is_lost_when_the_connection_drops_mid_run(
    proxied, proxy, declared, admin
):
    plan = scripts(7, 60, proxied.delivery_limit + 1)
    acked, dead, total = await run_scripts(proxied, admin, plan, cut=proxy.cut)

    assert set(acked) | set(dead) == set(plan)
    # Dead-lettering is at-least-once: a reject whose dead-letter copy was confirmed just
    # before the cut, but whose ack was lost with the connection, is rejected again on
    # redelivery. A second copy on the dead-letter queue is the price of never losing one.
    assert total >= len(dead)
    assert await queue_depth(admin, QUEUE) == 0
