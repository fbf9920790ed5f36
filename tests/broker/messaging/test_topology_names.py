"""Topology names and the declarative description: pure, no broker."""

from __future__ import annotations

import json

import pytest

from adapters import ADAPTER_NAMES
from broker.exceptions import ConfigurationError
from broker.topology import (
    Recipient,
    RecipientKind,
    build_topology,
    dead_letter_exchange_name,
    dead_letter_queue_name,
    disclosure_binding_key,
    disclosure_routing_key,
    ingest_queue_name,
    parse_recipient,
    queue_for_dead_letter_queue,
    recipient_queue_name,
)
from schemas.events import EventType


def test_queue_names_follow_the_recipient_kind():
    assert recipient_queue_name(Recipient("wam-mash", RecipientKind.MASH), "E06000040") == (
        "mash.E06000040"
    )
    assert recipient_queue_name(
        Recipient("rbwm-mash", RecipientKind.MASH, "E06000041"), "E06000040"
    ) == ("mash.E06000041")
    assert recipient_queue_name(Recipient("tvp-police", RecipientKind.PARTNER), "E06000040") == (
        "partner.tvp-police"
    )
    assert (
        recipient_queue_name(
            Recipient("slough-broker", RecipientKind.CROSS_BORDER, "E06000039"), "E06000040"
        )
        == "xborder.E06000039"
    )
    assert (
        recipient_queue_name(Recipient("oxon-broker", RecipientKind.CROSS_BORDER), "E06000040")
        == "xborder.oxon-broker"
    )


def test_every_event_type_makes_a_routing_key_that_the_party_binding_matches():
    for event_type in EventType:
        key = disclosure_routing_key("tvp-police", event_type.value)
        assert key == f"tvp-police.{event_type.value}"
        assert key.startswith(disclosure_binding_key("tvp-police").removesuffix("#"))


@pytest.mark.parametrize("party", ["TVP", "tvp.police", "t", "tvp#", "", "tvp police"])
def test_party_ids_that_would_break_a_routing_key_are_refused(party):
    with pytest.raises(ConfigurationError, match="party id"):
        disclosure_routing_key(party, "missing.reported")


@pytest.mark.parametrize("event_type", ["", "missing..reported", "missing.*", "a#", ".x"])
def test_event_types_that_are_not_plain_words_are_refused(event_type):
    with pytest.raises(ConfigurationError, match="event type"):
        disclosure_routing_key("tvp-police", event_type)


def test_dead_letter_names_are_derived_from_the_queue():
    assert dead_letter_queue_name("mash.E06000040") == "mash.E06000040.dlq"
    assert dead_letter_exchange_name("mash.E06000040") == "mash.E06000040.dlx"
    assert queue_for_dead_letter_queue("mash.E06000040.dlq") == "mash.E06000040"
    assert queue_for_dead_letter_queue("mash.E06000040") == "mash.E06000040"


def test_parse_recipient():
    assert parse_recipient("tvp-police:partner") == Recipient("tvp-police", RecipientKind.PARTNER)
    assert parse_recipient("slough-broker:xborder:E06000039") == Recipient(
        "slough-broker", RecipientKind.CROSS_BORDER, "E06000039"
    )
    with pytest.raises(ConfigurationError, match="kind must be one of"):
        parse_recipient("tvp-police:friend")
    with pytest.raises(ConfigurationError, match="PARTY:KIND"):
        parse_recipient("tvp-police")
    with pytest.raises(ConfigurationError, match="ONS code"):
        parse_recipient("slough-broker:xborder:Slough")


def test_build_topology_declares_ingest_recipients_and_their_dead_letters():
    topology = build_topology(
        "E06000040",
        [
            Recipient("wam-mash", RecipientKind.MASH),
            Recipient("tvp-police", RecipientKind.PARTNER),
        ],
        neighbours=["E06000039"],
        delivery_limit=7,
    )
    names = {q.name for q in topology.queues}
    work = {ingest_queue_name(a) for a in ADAPTER_NAMES} | {
        "mash.E06000040",
        "partner.tvp-police",
        "xborder.E06000039",
    }
    assert names == work | {dead_letter_queue_name(q) for q in work}
    assert {e.name: e.type for e in topology.exchanges} == {
        "ingest": "topic",
        "disclosures": "topic",
        **{dead_letter_exchange_name(q): "fanout" for q in work},
    }
    for queue in work:
        spec = topology.queue(queue)
        assert spec.dead_letter_queue == f"{queue}.dlq"
        assert spec.arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": 7,
            "x-dead-letter-exchange": f"{queue}.dlx",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        assert topology.queue(f"{queue}.dlq").arguments["x-queue-type"] == "quorum"
    bindings = {(b.exchange, b.queue, b.routing_key) for b in topology.bindings}
    assert ("ingest", "ingest.hl7v2", "hl7v2") in bindings
    assert ("disclosures", "mash.E06000040", "wam-mash.#") in bindings
    assert ("disclosures", "partner.tvp-police", "tvp-police.#") in bindings
    assert ("disclosures", "xborder.E06000039", "e06000039.#") in bindings
    assert ("mash.E06000040.dlx", "mash.E06000040.dlq", "") in bindings
    assert topology.recipient_queues == {
        "wam-mash": "mash.E06000040",
        "tvp-police": "partner.tvp-police",
        "e06000039": "xborder.E06000039",
    }


def test_two_parties_may_share_a_borough_queue_without_declaring_it_twice():
    topology = build_topology(
        "E06000040",
        [
            Recipient("slough-broker", RecipientKind.CROSS_BORDER, "E06000039"),
            Recipient("slough-panel", RecipientKind.CROSS_BORDER, "E06000039"),
        ],
        adapters=(),
    )
    assert [q.name for q in topology.queues] == ["xborder.E06000039", "xborder.E06000039.dlq"]
    keys = {b.routing_key for b in topology.bindings if b.queue == "xborder.E06000039"}
    assert keys == {"slough-broker.#", "slough-panel.#"}


def test_build_topology_refuses_bad_parameters():
    with pytest.raises(ConfigurationError, match="borough"):
        build_topology("Windsor")
    with pytest.raises(ConfigurationError, match="listed twice"):
        build_topology(
            "E06000040",
            [Recipient("tvp-police", RecipientKind.PARTNER)] * 2,
        )
    with pytest.raises(ConfigurationError, match="delivery_limit"):
        build_topology("E06000040", delivery_limit=0)
    with pytest.raises(ConfigurationError, match="adapter"):
        build_topology("E06000040", adapters=["Police Feed"])


def test_as_dict_is_json_ready():
    topology = build_topology("E06000040", [Recipient("wam-mash", RecipientKind.MASH)])
    described = json.loads(json.dumps(topology.as_dict()))
    assert described["recipients"] == {"wam-mash": "mash.E06000040"}
    assert {"exchange": "disclosures", "queue": "mash.E06000040", "routing_key": "wam-mash.#"} in (
        described["bindings"]
    )
