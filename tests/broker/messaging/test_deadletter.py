"""Listing and re-driving dead-letter queues on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from broker.exceptions import ConfigurationError
from broker.messaging import (
    DEAD_LETTER_REASON_HEADER,
    REDRIVE_COUNT_HEADER,
    Backoff,
    Consumer,
    DeadLetter,
    OutgoingMessage,
    Publisher,
    ReceivedMessage,
    RejectMessage,
    RetryLater,
    list_dead_letters,
    redrive,
    redrive_returned,
    returned_by_the_broker,
)
from broker.settings import AmqpSettings
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key
from tests.broker.messaging.conftest import eventually, queue_depth

pytestmark = pytest.mark.rabbitmq

QUEUE = "partner.tvp-police"
BODY = b"secret-sealed-payload"


def disclosure(message_id: str, event_type: str = "missing.reported") -> OutgoingMessage:
    return OutgoingMessage(
        exchange=DISCLOSURES_EXCHANGE,
        routing_key=disclosure_routing_key("tvp-police", event_type),
        body=BODY,
        message_id=message_id,
        event_type=event_type,
        source="urn:mash:party:wam-broker",
    )


async def consume_until(settings: AmqpSettings, handler, done) -> None:
    """Run a consumer of QUEUE with ``handler`` until ``done()`` holds, then stop it."""
    consumer = Consumer(settings, QUEUE, handler, backoff=Backoff(initial=0.05))
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(done)
    finally:
        await consumer.stop()
        await task


async def dead_letter_some(settings: AmqpSettings, admin) -> None:
    """Two rejected with reasons and one poison past the delivery limit; one acked."""

    async def handler(message: ReceivedMessage) -> None:
        match message.message_id:
            case "bad-1" | "bad-2":
                raise RejectMessage(f"claims_invalid: audience is not {QUEUE}")
            case "poison":
                raise RetryLater("store down")

    async with Publisher(settings) as publisher:
        results = await publisher.publish_batch(
            [
                disclosure("bad-1"),
                disclosure("bad-2", "cse.screening"),
                disclosure("poison"),
                disclosure("fine"),
            ]
        )
    assert all(r.confirmed for r in results)

    async def three_dead():
        return await queue_depth(admin, f"{QUEUE}.dlq") == 3

    await consume_until(settings, handler, three_dead)


async def test_list_shows_ids_reasons_and_counts_and_leaves_the_messages(amqp, declared, admin):
    await dead_letter_some(amqp, admin)

    report = await list_dead_letters(amqp, QUEUE)
    again = await list_dead_letters(amqp, f"{QUEUE}.dlq")

    assert report.total == 3
    assert report.queue == QUEUE
    assert report.dead_letter_queue == f"{QUEUE}.dlq"
    by_id = {letter.message_id: letter for letter in report.letters}
    assert set(by_id) == {"bad-1", "bad-2", "poison"}
    assert by_id["bad-1"].reason == f"claims_invalid: audience is not {QUEUE}"
    assert by_id["bad-2"].event_type == "cse.screening"
    assert by_id["poison"].reason == "delivery_limit"
    assert by_id["poison"].queue == QUEUE
    assert all(letter.deaths == 1 and letter.redrives == 0 for letter in report.letters)
    assert all(letter.dead_lettered_at is not None for letter in report.letters)
    assert all(letter.size == len(BODY) for letter in report.letters)
    assert report.by_reason == {
        f"claims_invalid: audience is not {QUEUE}": 2,
        "delivery_limit": 1,
    }
    # Listing is read-only: the messages are all still there.
    assert {letter.message_id for letter in again.letters} == set(by_id)
    assert await queue_depth(admin, f"{QUEUE}.dlq") == 3


async def test_list_respects_the_limit(amqp, declared, admin):
    await dead_letter_some(amqp, admin)
    report = await list_dead_letters(amqp, QUEUE, limit=2)
    assert report.total == 3
    assert len(report.letters) == 2


async def test_redrive_round_trip(amqp, declared, admin):
    await dead_letter_some(amqp, admin)

    first = await redrive(amqp, QUEUE, limit=1)
    assert (first.moved, first.failed, first.remaining) == (1, 0, 2)
    rest = await redrive(amqp, QUEUE)
    assert (rest.moved, rest.failed, rest.remaining) == (2, 0, 0)

    assert await queue_depth(admin, f"{QUEUE}.dlq") == 0
    assert await queue_depth(admin, QUEUE) == 3
    work = await admin.declare_queue(QUEUE, passive=True)
    back = []
    for _ in range(3):
        message = await work.get(timeout=5)
        await message.ack()
        back.append(message)
    assert {m.message_id for m in back} == {"bad-1", "bad-2", "poison"}
    for message in back:
        assert message.body == BODY
        assert message.delivery_mode == 2
        assert message.headers[REDRIVE_COUNT_HEADER] == 1
        assert DEAD_LETTER_REASON_HEADER not in message.headers
        assert message.headers.get("x-delivery-count", 0) == 0
        assert message.headers["ce-id"] == message.message_id


async def test_a_redriven_message_that_dies_again_is_counted_and_not_looped(amqp, declared, admin):
    await dead_letter_some(amqp, admin)
    await redrive(amqp, QUEUE)

    async def reject_all(message: ReceivedMessage) -> None:
        raise RejectMessage("still wrong")

    async def all_dead_again():
        return await queue_depth(admin, f"{QUEUE}.dlq") == 3

    await consume_until(amqp, reject_all, all_dead_again)
    report = await list_dead_letters(amqp, QUEUE)
    by_id = {letter.message_id: letter for letter in report.letters}
    assert all(letter.redrives == 1 for letter in report.letters)
    assert all(letter.reason == "still wrong" for letter in report.letters)
    assert by_id["poison"].deaths == 2  # the delivery limit, then this reject


async def test_redrive_of_a_queue_that_does_not_exist_is_a_configuration_error(amqp, declared):
    with pytest.raises(ConfigurationError, match=r"queue nowhere-\w+\.dlq does not exist"):
        await redrive(amqp, f"nowhere-{uuid.uuid4().hex[:6]}")
    with pytest.raises(ConfigurationError, match="does not exist"):
        await list_dead_letters(amqp, "nowhere")


async def test_only_what_the_broker_dead_lettered_by_count_goes_round_again(amqp, declared, admin):
    await dead_letter_some(amqp, admin)

    [result] = await redrive_returned(amqp, [QUEUE], max_redrives=2)

    assert (result.moved, result.failed, result.remaining) == (1, 0, 2)
    work = await admin.declare_queue(QUEUE, passive=True)
    message = await work.get(timeout=5)
    await message.ack()
    assert message.message_id == "poison"
    assert message.headers[REDRIVE_COUNT_HEADER] == 1
    # What a consumer refused stays for an operator, in its order.
    report = await list_dead_letters(amqp, QUEUE)
    assert [letter.message_id for letter in report.letters] == ["bad-1", "bad-2"]


async def test_a_message_dead_lettered_by_count_again_and_again_is_left_after_the_cap(
    amqp, declared, admin
):
    await dead_letter_some(amqp, admin)
    [first] = await redrive_returned(amqp, [QUEUE], max_redrives=1)
    assert first.moved == 1

    async def always_later(message: ReceivedMessage) -> None:
        raise RetryLater("store down")

    async def poison_dead_again():
        return await queue_depth(admin, f"{QUEUE}.dlq") == 3

    await consume_until(amqp, always_later, poison_dead_again)
    [second] = await redrive_returned(amqp, [QUEUE], max_redrives=1)
    assert (second.moved, second.remaining) == (0, 3)
    by_id = {letter.message_id: letter for letter in (await list_dead_letters(amqp, QUEUE)).letters}
    assert (by_id["poison"].reason, by_id["poison"].redrives) == ("delivery_limit", 1)


def test_the_choice_reads_the_reason_and_the_redrive_count() -> None:
    def letter(reason: str, redrives: int) -> DeadLetter:
        return DeadLetter(
            message_id="m-1",
            event_type=None,
            reason=reason,
            queue=QUEUE,
            deaths=1,
            redrives=redrives,
            dead_lettered_at=None,
            size=1,
        )

    chosen = returned_by_the_broker(3)
    assert chosen(letter("delivery_limit", 0))
    assert chosen(letter("delivery_limit", 2))
    assert not chosen(letter("delivery_limit", 3))
    assert not chosen(letter("rejected", 0))
    assert not chosen(letter("replay", 0))
    assert not returned_by_the_broker(0)(letter("delivery_limit", 0))


async def test_a_sweep_passes_over_empty_and_missing_dead_letter_queues(amqp, declared, admin):
    await dead_letter_some(amqp, admin)
    missing = f"nowhere-{uuid.uuid4().hex[:6]}"
    results = await redrive_returned(amqp, [missing, "mash.E06000040", QUEUE], max_redrives=3)
    assert [(r.queue, r.moved) for r in results] == [(QUEUE, 1)]
