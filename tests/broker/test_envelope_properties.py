"""Properties of the envelope: any valid event survives; any single changed byte is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from broker.exceptions import SecurityError
from broker.replay import MemoryReplayStore
from schemas import Event, EventType, example_event, example_types, make_test_nhs_number
from tests.broker.test_envelope import World

# Text the canonical schema accepts: no control characters except tab and newline, and no
# surrogates (not encodable). Leading/trailing space is stripped by the schema, which is
# fine: the property compares the validated event with what comes out.
_FORBIDDEN = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A)] + ["\x7f"]


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters=_FORBIDDEN),
        min_size=1,
        max_size=max_size,
    ).filter(lambda s: s.strip() != "")


_TEXT = _text(120)
_MOMENT = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
    max_value=datetime(2099, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)

#: Where a value may be replaced, and what may replace it. Paths absent from an event
#: type are skipped, so one table serves every body type.
_REPLACEMENTS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("metadata", "event_id"): st.uuids().map(str),
    ("metadata", "occurred_at"): _MOMENT.map(lambda d: d.isoformat()),
    ("subject", "given_name"): _TEXT,
    ("subject", "family_name"): _TEXT,
    ("subject", "date_of_birth"): st.dates(date(2005, 1, 1), date(2025, 1, 1)).map(str),
    ("subject", "nhs_number"): st.integers(0, 999_999).map(make_test_nhs_number),
    ("body", "circumstances"): _text(400),
    ("body", "note"): _TEXT,
    ("body", "summary"): _TEXT,
    ("body", "last_seen", "description"): _TEXT,
    ("body", "last_seen", "latitude"): st.floats(-90, 90, allow_nan=False),
    ("body", "last_seen", "longitude"): st.floats(-180, 180, allow_nan=False),
    ("body", "risk_grade"): st.sampled_from(["no_apparent_risk", "low", "medium", "high"]),
    ("body", "level"): st.sampled_from([1, 2, 3]),
    ("body", "site"): _TEXT,
}


@st.composite
def valid_events(draw: st.DrawFn) -> Event:
    """An example event of any body type with many of its values replaced at random."""
    event_type = draw(st.sampled_from(example_types()))
    document = example_event(event_type).model_dump(mode="json")
    for path, strategy in _REPLACEMENTS.items():
        parent: Any = document
        for step in path[:-1]:
            parent = parent.get(step) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent and draw(st.booleans()):
            parent[path[-1]] = draw(strategy)
    try:
        return Event.model_validate(document)
    except ValidationError:
        # A combination the schema refuses (e.g. a risk grade its body lacks): not a
        # valid event, so outside the property.
        assume(False)
        raise


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(tmp_path_factory.mktemp("keys"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=valid_events())
def test_any_valid_event_survives_seal_and_open_unchanged(world: World, event: Event) -> None:
    claims = world.open(world.seal(event).token)
    assert claims.event == event.model_dump(mode="json")
    assert Event.model_validate(claims.event) == event
    assert claims.event_type == EventType(event.body.type)


@pytest.fixture(scope="module")
def sealed_token(world: World) -> bytes:
    return world.seal(example_event(EventType.MISSING_REPORTED)).token.encode()


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_refused(
    world: World, sealed_token: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(sealed_token) - 1), label="position")
    original = sealed_token[position]
    replacement = data.draw(
        st.integers(0, 255).filter(lambda b: b != original), label="replacement"
    )
    changed = sealed_token[:position] + bytes([replacement]) + sealed_token[position + 1 :]
    with pytest.raises(SecurityError):
        world.open(changed, replay=MemoryReplayStore())


def test_the_unchanged_token_opens(world: World, sealed_token: bytes) -> None:
    # The property above is only meaningful if the original is accepted.
    assert world.open(sealed_token).iss == "tvp-police"


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_truncation_or_insertion_is_refused(
    world: World, sealed_token: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(sealed_token)), label="position")
    if data.draw(st.booleans(), label="insert"):
        extra = bytes([data.draw(st.integers(0, 255), label="byte")])
        changed = sealed_token[:position] + extra + sealed_token[position:]
    else:
        changed = sealed_token[: min(position, len(sealed_token) - 1)]
    with pytest.raises(SecurityError):
        world.open(changed, replay=MemoryReplayStore())


def test_every_position_changed_to_another_base64url_character_is_refused(
    world: World, sealed_token: bytes
) -> None:
    # Exhaustive over positions, with the change most likely to get deep: a character
    # that keeps the token well-formed base64url.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    accepted = []
    for position, byte in enumerate(sealed_token):
        if byte == ord("."):
            continue
        replacement = alphabet[(alphabet.index(byte) + 1) % len(alphabet)]
        changed = sealed_token[:position] + bytes([replacement]) + sealed_token[position + 1 :]
        try:
            world.open(changed, replay=MemoryReplayStore())
        except SecurityError:
            continue
        accepted.append(position)
    assert accepted == []
