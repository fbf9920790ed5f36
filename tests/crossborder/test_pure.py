"""Cross-border pieces without services: neighbours, shovel definition, completion, checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters import ADAPTER_NAMES
from broker.crossborder import (
    INCOMPLETE_CODE,
    OWN_AREA_ROLES,
    RECEIVE_QUEUE,
    SOURCE_SYSTEM,
    IncompleteEvent,
    NotANeighbour,
    canonical_event,
    check_neighbour_rules,
    missing_for_receiver,
    neighbour_for,
    neighbours,
    receiving_topology,
    shovel_definition,
    subscriptions_of,
)
from broker.exceptions import ConfigurationError
from broker.policy import (
    ALWAYS_INCLUDED,
    Agreement,
    BoroughRole,
    field_catalogue,
    load_agreement,
    parse_agreement,
    read_agreement_file,
)
from broker.settings import AmqpSettings, CrossBorderSettings, Settings
from schemas import DisclosureClaims, EventType, MissingFound, Provenance
from tests.crossborder.helpers import (
    AGREEMENT_A,
    AGREEMENT_B,
    PARTY_A,
    SLOUGH,
    disclosure_to_b,
    missing_found_event,
)


@pytest.fixture(scope="module")
def agreement_a() -> Agreement:
    return load_agreement(AGREEMENT_A)


# --------------------------------------------------------------------------- neighbours


def test_neighbours_are_the_agreement_s_neighbouring_brokers(agreement_a: Agreement) -> None:
    found = {(n.party_id, n.borough, n.queue, n.shovel) for n in neighbours(agreement_a)}
    assert found == {
        ("slough-broker", "E06000039", "xborder.E06000039", "mash-xborder-E06000039"),
        ("bracknell-broker", "E06000036", "xborder.E06000036", "mash-xborder-E06000036"),
    }
    assert neighbour_for(agreement_a, "slough-broker") == neighbour_for(agreement_a, SLOUGH)


@pytest.mark.parametrize("name", ["E06000038", "slough-panel", "tvp-police", "nobody"])
def test_a_borough_or_party_that_is_not_a_neighbouring_broker_cannot_be_linked(
    agreement_a: Agreement, name: str
) -> None:
    with pytest.raises(NotANeighbour, match="not a neighbouring broker"):
        neighbour_for(agreement_a, name)


def test_two_brokers_for_one_borough_are_refused(agreement_a: Agreement) -> None:
    data = agreement_a.model_dump(mode="json")
    twin = dict(next(p for p in data["parties"] if p["id"] == "slough-broker"), id="slough-two")
    data["parties"].append(twin)
    with pytest.raises(ConfigurationError, match="two neighbouring brokers"):
        neighbours(Agreement.model_validate(data))


def test_the_receiving_queue_is_not_an_adapter_and_is_declared_with_a_dead_letter_queue() -> None:
    assert "xborder" not in ADAPTER_NAMES
    topology = receiving_topology(Settings(_env_file=None, borough=SLOUGH))
    assert RECEIVE_QUEUE == "ingest.xborder"
    assert topology.queue(RECEIVE_QUEUE).dead_letter_queue == "ingest.xborder.dlq"
    assert ("ingest", RECEIVE_QUEUE, "xborder") in {
        (b.exchange, b.queue, b.routing_key) for b in topology.bindings
    }


def test_shovel_definition_confirms_before_acking_and_names_no_credentials_of_ours(
    agreement_a: Agreement,
) -> None:
    settings = Settings(
        _env_file=None,
        amqp=AmqpSettings(url=SecretStr("amqp://ours:our-secret@127.0.0.1:5672/wam%2Fprod")),
        crossborder=CrossBorderSettings(reconnect_delay_seconds=7, prefetch=50),
    )
    neighbour = neighbour_for(agreement_a, SLOUGH)
    value = shovel_definition(settings, neighbour, SecretStr("amqps://wam:theirs@slough.example/b"))
    assert value["ack-mode"] == "on-confirm"
    assert value["src-uri"] == "amqp:///wam%2Fprod"
    assert (value["src-queue"], value["dest-exchange"], value["dest-exchange-key"]) == (
        "xborder.E06000039",
        "ingest",
        "xborder",
    )
    assert (value["reconnect-delay"], value["src-prefetch-count"]) == (7, 50)
    assert "our-secret" not in repr(value)


# --------------------------------------------------------------------------- completion


def _claims(event: dict[str, Any], **overrides: Any) -> DisclosureClaims:
    now = int(datetime.now(UTC).timestamp())
    values: dict[str, Any] = {
        "iss": PARTY_A,
        "aud": "slough-broker",
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "event": event,
        "event_type": event["body"]["type"],
        "rule_id": "cross-border-missing",
        "lawful_basis": "ca-2004-s11",
        "purpose": "So that the neighbouring borough can meet its own duties to the child.",
        "provenance": Provenance(
            source_agency="tvp-police",
            source_event_id=uuid.UUID(event["metadata"]["event_id"]),
            original_sha256="0" * 64,
        ),
    }
    values.update(overrides)
    return DisclosureClaims.model_validate(values)


def test_completion_fills_metadata_from_the_envelope_and_keeps_the_rest(
    agreement_a: Agreement,
) -> None:
    original = missing_found_event()
    minimised = disclosure_to_b(agreement_a, original)
    assert "occurred_at" not in minimised["metadata"]  # withheld by A's agreement
    claims = _claims(minimised)

    event = canonical_event(claims)

    assert event.metadata.event_id == original.metadata.event_id
    assert event.metadata.source.agency == PARTY_A
    assert event.metadata.source.system == SOURCE_SYSTEM
    assert event.metadata.source.reference == f"tvp-police:{claims.jti}"
    assert event.metadata.occurred_at == datetime.fromtimestamp(claims.iat, UTC)
    assert event.metadata.correlation_id == original.metadata.correlation_id
    # The child as A shared it: identity and authorities, not the street address.
    assert original.subject is not None
    assert original.subject.home_address is not None
    assert event.subject is not None
    assert event.subject.model_dump(exclude={"home_address"}) == original.subject.model_dump(
        exclude={"home_address"}
    )
    assert event.subject.home_address is not None
    assert event.subject.home_address.model_dump() == {
        "lines": (),
        "town": None,
        "postcode": None,
        "local_authority": original.subject.home_address.local_authority,
    }
    assert event.body.model_dump(exclude={"found_place"}) == original.body.model_dump(
        exclude={"found_place"}
    )


def test_completion_keeps_a_shared_occurred_at(agreement_a: Agreement) -> None:
    minimised = disclosure_to_b(agreement_a, missing_found_event())
    minimised["metadata"]["occurred_at"] = "2026-03-01T10:00:00+00:00"
    assert canonical_event(_claims(minimised)).metadata.occurred_at == datetime(
        2026, 3, 1, 10, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("remove", "location"),
    [
        (("body", "found_at"), "body.found_at"),
        (("body", "episode_id"), "body.episode_id"),
        (("subject",), "(event: subject is required for missing.found events)"),
    ],
)
def test_a_withheld_required_field_makes_the_event_incomplete(
    agreement_a: Agreement, remove: tuple[str, ...], location: str
) -> None:
    minimised = disclosure_to_b(agreement_a, missing_found_event())
    holder = minimised
    for key in remove[:-1]:
        holder = holder[key]
    del holder[remove[-1]]
    with pytest.raises(IncompleteEvent) as refused:
        canonical_event(_claims(minimised))
    assert location in refused.value.locations
    assert "Crossfield" not in str(refused.value)


# --------------------------------------------------------------------------- sending check


def test_the_shipped_agreement_sends_neighbours_complete_events() -> None:
    parsed = read_agreement_file(AGREEMENT_A)
    assert parsed.agreement is not None
    assert check_neighbour_rules(parsed.agreement, parsed.lines) == []


def test_a_rule_that_withholds_a_required_field_is_found_with_its_line() -> None:
    text = AGREEMENT_A.read_text().replace(
        "body.screened_at, body.screened_by]", "body.screened_at]"
    )
    parsed = parse_agreement(text, source="agreement.yaml")
    assert parsed.agreement is not None
    findings = check_neighbour_rules(parsed.agreement, parsed.lines)
    assert [(f.code, f.where) for f in findings] == [(INCOMPLETE_CODE, "rule cross-border-cse")]
    assert "body.screened_by" in findings[0].message
    assert findings[0].line is not None


def test_the_test_agreement_of_slough_sends_complete_events() -> None:
    assert check_neighbour_rules(load_agreement(AGREEMENT_B)) == []


def test_missing_for_receiver_names_what_each_type_needs() -> None:
    bare = set(ALWAYS_INCLUDED)
    assert missing_for_receiver(EventType.MISSING_FOUND, bare) == [
        "body.episode_id",
        "body.found_at",
        "subject identity (nhs_number, paris_id, police_person_ref, or family_name "
        "with date_of_birth)",
    ]
    named = bare | {"body.episode_id", "body.found_at", "subject.family_name"}
    assert "subject identity" in " ".join(missing_for_receiver(EventType.MISSING_FOUND, named))
    assert missing_for_receiver(EventType.MISSING_FOUND, named | {"subject.date_of_birth"}) == []
    # Part of a group shared: the group's own required fields are needed too.
    assert missing_for_receiver(
        EventType.MISSING_FOUND,
        named | {"subject.date_of_birth", "subject.looked_after.placed_in"},
    ) == ["subject.looked_after.responsible_authority"]
    assert missing_for_receiver(EventType.INTELLIGENCE, bare | {"body.area"}) == [
        "one of body.locations, vehicles, associates or online_contacts"
    ]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(EventType)))
def test_everything_shared_is_always_complete(event_type: EventType) -> None:
    allowed = {"metadata.*", "subject.*", "body.*"} | ALWAYS_INCLUDED
    assert missing_for_receiver(event_type, allowed) == []
    # And every path the check names is a real field of the schema (or a description).
    for missing in missing_for_receiver(event_type, ALWAYS_INCLUDED):
        first = missing.split(" ", 1)[0]
        assert first in field_catalogue().paths(event_type) or " " in missing


# --------------------------------------------------------------------------- subscriptions


def test_a_panel_subscribes_to_its_own_area_through_the_agreement() -> None:
    [subscription] = subscriptions_of(load_agreement(AGREEMENT_B), "slough-panel")
    assert subscription.rule_id == "panel-own-area"
    assert subscription.via == (
        BoroughRole.LIVES_IN,
        BoroughRole.MISSING_FROM,
        BoroughRole.FOUND_IN,
        BoroughRole.AREA,
    )
    assert set(subscription.via) == set(OWN_AREA_ROLES)
    assert subscription.boroughs == (SLOUGH,)
    assert "body.locations.*" in subscription.fields
    assert "subject.home_address.lines" not in subscription.fields
    assert "lives_in/missing_from/found_in/area borough is E06000039" in subscription.describe()


def test_a_neighbouring_broker_s_subscriptions_are_the_cross_border_rules(
    agreement_a: Agreement,
) -> None:
    found = {s.rule_id: s for s in subscriptions_of(agreement_a, "slough-broker")}
    assert set(found) == {
        "cross-border-missing",
        "cross-border-cse",
        "intelligence-to-police-and-panels",
    }
    assert found["cross-border-cse"].conditions == ("CSE level 2/3",)
    assert found["cross-border-missing"].boroughs == (SLOUGH,)
    assert subscriptions_of(agreement_a, "bracknell-broker")[0].boroughs == ("E06000036",)


def test_subscriptions_of_a_stranger_are_refused(agreement_a: Agreement) -> None:
    with pytest.raises(ConfigurationError, match="not a party"):
        subscriptions_of(agreement_a, "reading-panel")


def test_a_received_event_is_written_out_with_only_what_arrived(agreement_a: Agreement) -> None:
    minimised = disclosure_to_b(agreement_a, missing_found_event())
    event = canonical_event(_claims(minimised))
    written = event.model_dump(mode="json")
    # Defaults the schema would add (no place, no street address) are not stated as facts.
    assert "found_place" not in written["body"]
    assert set(written["subject"]["home_address"]) == {"local_authority"}
    assert written["body"]["found_at"] == minimised["body"]["found_at"]
    assert isinstance(event.body, MissingFound)
    assert event.body.found_place is None  # still a complete canonical event to the code
