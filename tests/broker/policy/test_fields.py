"""Field paths: the schema catalogue, allow-list compilation and minimisation."""

from __future__ import annotations

import time

import pytest

from broker.policy import (
    ALWAYS_INCLUDED,
    compile_allow_list,
    field_catalogue,
    is_allowed,
    leaf_paths,
    minimise,
    minimise_with,
)
from schemas import EventType, example_event

EVENT = {
    "metadata": {"event_id": "e-1", "source": {"agency": "tvp-police", "system": "rms"}},
    "subject": {
        "nhs_number": "9990000018",
        "home_address": {"lines": ["1 Test Row"], "town": "Maidenhead"},
        "looked_after": None,
    },
    "body": {
        "type": "intelligence",
        "locations": [
            {"kind": "hotel", "postcode": "SL1 1AA"},
            {"kind": "park", "postcode": None},
        ],
        "vehicles": [],
        "note": None,
    },
}


def test_a_single_field_is_kept_and_nothing_else() -> None:
    assert minimise(EVENT, {"subject.nhs_number"}) == {"subject": {"nhs_number": "9990000018"}}


def test_a_path_through_a_list_applies_to_every_element() -> None:
    kept = minimise(EVENT, {"body.locations.kind"})
    assert kept == {"body": {"locations": [{"kind": "hotel"}, {"kind": "park"}]}}


def test_a_null_field_that_is_allowed_is_kept_as_null() -> None:
    assert minimise(EVENT, {"body.note"}) == {"body": {"note": None}}
    assert minimise(EVENT, {"body.locations.postcode"})["body"]["locations"][1] == {
        "postcode": None
    }


def test_absent_fields_and_null_groups_are_left_out() -> None:
    assert minimise(EVENT, {"subject.looked_after.placed_in", "body.nonsense"}) == {}


def test_a_wildcard_keeps_the_whole_group() -> None:
    assert minimise(EVENT, {"subject.home_address.*"}) == {
        "subject": {"home_address": {"lines": ["1 Test Row"], "town": "Maidenhead"}}
    }
    assert minimise(EVENT, {"body.*"}) == {"body": EVENT["body"]}


def test_a_group_named_without_a_wildcard_is_withheld() -> None:
    assert minimise(EVENT, {"subject.home_address"}) == {}
    assert minimise(EVENT, {"body.locations"}) == {}


def test_a_list_of_plain_values_is_a_single_field() -> None:
    kept = minimise(EVENT, {"subject.home_address.lines", "body.vehicles"})
    assert kept == {
        "subject": {"home_address": {"lines": ["1 Test Row"]}},
        "body": {"vehicles": []},
    }


def test_list_items_with_nothing_allowed_left_do_not_show_how_many_there_were() -> None:
    assert minimise(EVENT, {"body.locations.description"}) == {}


def test_a_wildcard_wins_over_named_fields_in_either_order() -> None:
    for paths in (["subject.*", "subject.nhs_number"], ["subject.nhs_number", "subject.*"]):
        assert minimise(EVENT, set(paths)) == {"subject": EVENT["subject"]}


def test_named_fields_of_a_group_win_over_the_bare_group() -> None:
    for paths in (
        ["subject.home_address", "subject.home_address.town"],
        ["subject.home_address.town", "subject.home_address"],
    ):
        tree = compile_allow_list(paths)
        assert minimise_with(EVENT, tree) == {"subject": {"home_address": {"town": "Maidenhead"}}}


def test_the_output_is_a_copy() -> None:
    kept = minimise(EVENT, {"subject.*", "body.locations.kind"})
    kept["subject"]["home_address"]["lines"].append("changed")
    kept["body"]["locations"][0]["kind"] = "changed"
    assert EVENT["subject"]["home_address"]["lines"] == ["1 Test Row"]  # type: ignore[index]
    assert EVENT["body"]["locations"][0]["kind"] == "hotel"  # type: ignore[index]


def test_leaf_paths_name_list_fields_once() -> None:
    assert leaf_paths(EVENT) == {
        "metadata.event_id", "metadata.source.agency", "metadata.source.system",
        "subject.nhs_number", "subject.home_address.lines", "subject.home_address.town",
        "subject.looked_after", "body.type", "body.locations.kind", "body.locations.postcode",
        "body.vehicles", "body.note",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("path", "allowed", "expected"),
    [
        ("subject.nhs_number", {"subject.nhs_number"}, True),
        ("subject.nhs_number", {"subject.*"}, True),
        ("subject", {"subject.*"}, True),
        ("subject.nhs_number", {"subject"}, False),
        ("subject.home_address.town", {"subject.home_address.lines"}, False),
        ("body.locations.kind", {"body.locations.*"}, True),
    ],
)
def test_is_allowed(path: str, allowed: set[str], expected: bool) -> None:
    assert is_allowed(path, allowed) is expected


def test_the_routing_fields_exist_for_every_event_type() -> None:
    catalogue = field_catalogue()
    for event_type in EventType:
        assert catalogue.paths(event_type) >= ALWAYS_INCLUDED


@pytest.mark.parametrize(
    ("path", "types", "problem"),
    [
        ("subject.nhs_number", None, None),
        ("body.locations.kind", [EventType.INTELLIGENCE], None),
        ("body.*", [EventType.CASE_STATUS], None),
        ("subject.home_address.*", None, None),
        ("body.foo", None, "field body.foo is not in the canonical schema"),
        (
            "body.risk_grade",
            [EventType.CASE_STATUS],
            "field body.risk_grade is not in the schema of case.status events",
        ),
        (
            "subject.home_address",
            None,
            "field subject.home_address is a group of fields; name the ones needed or write "
            "subject.home_address.*",
        ),
        (
            "subject.nhs_number.*",
            None,
            "field subject.nhs_number is a single field; write it without .*",
        ),
    ],
)
def test_catalogue_problems(path: str, types: list[EventType] | None, problem: str | None) -> None:
    assert field_catalogue().problem(path, types) == problem


def test_the_catalogue_follows_the_schema_models() -> None:
    catalogue = field_catalogue()
    assert catalogue.types_with("body.cse_tracker.level") == {EventType.CASE_STATUS}
    assert catalogue.types_with("body.episode_id") == {
        EventType.MISSING_REPORTED, EventType.MISSING_UPDATED, EventType.MISSING_FOUND,
        EventType.RETURN_INTERVIEW,
    }  # fmt: skip
    assert catalogue.is_group("body.locations") is True
    assert catalogue.is_group("body.indicators") is False


def test_minimising_a_typical_event_is_fast() -> None:
    """Guard against an accidental slowdown; the budget is 20 µs on this machine kind."""
    event = example_event("missing.reported").model_dump(mode="json")
    allowed = {
        "subject.given_name", "subject.family_name", "subject.date_of_birth",
        "subject.nhs_number", "body.episode_id", "body.risk_grade", "body.reported_at",
        "metadata.source.agency", *ALWAYS_INCLUDED,
    }  # fmt: skip
    tree = compile_allow_list(allowed)
    rounds = 2000
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            minimise_with(event, tree)
        best = min(best, (time.perf_counter() - start) / rounds)
    # Generous (5x) so that a loaded CI machine does not make it flaky.
    assert best < 100e-6, f"{best * 1e6:.1f} µs per minimisation"
