"""The canonical models: strictness, NHS numbers, ONS codes, UTC times, every body type."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    Child,
    CseTrackerEntry,
    Event,
    EventType,
    LookedAfter,
    UnscheduledCareAttendance,
    example_event,
    example_types,
    is_valid_nhs_number,
    local_authority_name,
    make_test_nhs_number,
)


def _example_json(event_type: EventType) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(example_event(event_type).model_dump_json())
    return data


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_body_type_has_a_valid_example(event_type: EventType) -> None:
    event = example_event(event_type)
    assert event.event_type is event_type
    assert Event.model_validate_json(event.model_dump_json()) == event


def test_examples_cover_every_type() -> None:
    assert set(example_types()) == set(EventType)


def test_unknown_fields_are_refused() -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["body"]["favourite_colour"] = "blue"
    with pytest.raises(ValidationError, match="favourite_colour"):
        Event.model_validate(data)


def test_unknown_body_type_is_refused() -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["body"]["type"] = "missing.teleported"
    with pytest.raises(ValidationError, match="body"):
        Event.model_validate(data)


def test_naive_datetimes_are_refused() -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["metadata"]["occurred_at"] = "2026-11-20T21:30:00"
    with pytest.raises(ValidationError, match="occurred_at"):
        Event.model_validate(data)


def test_aware_datetimes_are_normalised_to_utc() -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["metadata"]["occurred_at"] = "2026-07-01T10:00:00+01:00"
    event = Event.model_validate(data)
    assert event.metadata.occurred_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert event.metadata.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("grade", ["no_apparent_risk", "low", "medium", "high"])
def test_risk_grades(grade: str) -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["body"]["risk_grade"] = grade
    assert Event.model_validate(data).body.risk_grade == grade  # type: ignore[union-attr]


def test_risk_grade_outside_the_scale_is_refused() -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["body"]["risk_grade"] = "absent"
    with pytest.raises(ValidationError, match="risk_grade"):
        Event.model_validate(data)


@pytest.mark.parametrize("level", [0, 4, "3a"])
def test_cse_level_outside_one_to_three_is_refused(level: object) -> None:
    data = _example_json(EventType.CSE_SCREENING)
    data["body"]["level"] = level
    with pytest.raises(ValidationError, match="level"):
        Event.model_validate(data)


def test_nhs_number_check_digit() -> None:
    assert is_valid_nhs_number("9434765919")  # the NHS Data Dictionary's worked example
    assert not is_valid_nhs_number("9434765918")
    assert not is_valid_nhs_number("943476591")
    assert not is_valid_nhs_number("94347659190")


def test_nhs_number_with_spaces_is_normalised() -> None:
    child = Child(nhs_number="943 476 5919")
    assert child.nhs_number == "9434765919"


def test_invalid_nhs_number_error_does_not_echo_the_number() -> None:
    with pytest.raises(ValidationError) as caught:
        Child(nhs_number="9434765918")
    text = str(caught.value)
    assert "nhs_number" in text
    assert "9434765918" not in text
    assert "9434765918" not in json.dumps(caught.value.errors(include_input=False), default=str)


@given(st.integers(min_value=0, max_value=10**6))
def test_generated_test_numbers_are_valid_and_in_the_999_range(serial: int) -> None:
    number = make_test_nhs_number(serial)
    assert number.startswith("999")
    assert is_valid_nhs_number(number)


def test_a_child_must_be_identifiable() -> None:
    with pytest.raises(ValidationError, match="needs an NHS number"):
        Child(given_name="Ellie")
    assert Child(family_name="Brackwater", date_of_birth=date(2012, 1, 1)).family_name


@pytest.mark.parametrize("code", ["E06000040", "E09000001", "W06000015", "S12000036"])
def test_ons_codes_accepted(code: str) -> None:
    assert LookedAfter(responsible_authority=code).responsible_authority == code


@pytest.mark.parametrize("code", ["E0600004", "X06000040", "Slough", "E05000040"])
def test_bad_ons_codes_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="responsible_authority"):
        LookedAfter(responsible_authority=code)


def test_local_authority_names() -> None:
    assert local_authority_name("E06000040") == "Windsor and Maidenhead"
    assert local_authority_name("E06000039") == "Slough"
    assert local_authority_name("E09000001") == "E09000001"


def test_out_of_area_placement() -> None:
    assert LookedAfter(responsible_authority="E06000039", placed_in="E06000040").out_of_area
    assert not LookedAfter(responsible_authority="E06000040", placed_in="E06000040").out_of_area


def test_home_authority_prefers_the_placing_authority() -> None:
    event = example_event(EventType.MISSING_REPORTED)
    assert event.subject is not None
    assert event.subject.home_authority == "E06000039"


def test_subject_required_except_for_intelligence() -> None:
    data = _example_json(EventType.MISSING_REPORTED)
    data["subject"] = None
    with pytest.raises(ValidationError, match="subject is required"):
        Event.model_validate(data)
    intel = _example_json(EventType.INTELLIGENCE)
    intel["subject"] = None
    assert Event.model_validate(intel).subject is None


def test_departure_before_arrival_is_refused() -> None:
    arrived = datetime(2026, 11, 20, 10, tzinfo=UTC)
    with pytest.raises(ValidationError, match="departed_at"):
        UnscheduledCareAttendance(
            setting="emergency_department",  # type: ignore[arg-type]
            site="RDU01",
            arrived_at=arrived,
            departed_at=arrived - timedelta(minutes=1),
        )


def test_tracker_removal_needs_a_reason() -> None:
    with pytest.raises(ValidationError, match="removal_reason"):
        CseTrackerEntry(level=2, identified_on=date(2026, 1, 1), removed_on=date(2026, 2, 1))  # type: ignore[arg-type]


def test_control_characters_refused_in_text() -> None:
    data = _example_json(EventType.MISSING_UPDATED)
    data["body"]["note"] = "seen\x00here"
    with pytest.raises(ValidationError, match="note"):
        Event.model_validate(data)


def test_models_are_immutable() -> None:
    event = example_event(EventType.MISSING_FOUND)
    with pytest.raises(ValidationError):
        event.metadata.correlation_id = "other"  # type: ignore[misc]


def test_offsets_other_than_london_are_converted() -> None:
    data = _example_json(EventType.MISSING_FOUND)
    data["body"]["found_at"] = datetime(2026, 3, 29, 3, 0, tzinfo=timezone(timedelta(hours=5)))
    event = Event.model_validate(data)
    assert event.body.found_at == datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # type: ignore[union-attr]
