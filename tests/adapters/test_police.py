"""The police adapter: contract suite, golden files, mapping rules, clock changes, schema, fuzz."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters.police
from adapters.base import AdapterContext, AdapterError
from adapters.police.adapter import MAX_PROBLEMS, PoliceAdapter, json_path
from adapters.police.format import record_json_schema
from adapters.police.labels import RISK_GRADES
from broker.samples.police import render
from broker.samples.scenario import make_scenario
from schemas.common import make_test_nhs_number
from schemas.events import (
    CseIndicator,
    CseLevel,
    CseScreening,
    Event,
    FoundBy,
    Intelligence,
    LawfulBasis,
    LocationKind,
    MissingFound,
    MissingReported,
    MissingUpdated,
    RiskGrade,
)
from schemas.person import PlacementType, Sex
from tests.adapters.contract import GOLDEN_NOW, GOLDEN_ROOT, AdapterContract

GOLDEN = GOLDEN_ROOT / "police"
SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "partners" / "police-record.schema.json"
WAM, SLOUGH = "E06000040", "E06000039"


def golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.in.json").read_text())
    return data


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


@pytest.fixture
def police() -> PoliceAdapter:
    return PoliceAdapter()


@pytest.fixture
def ctx() -> AdapterContext:
    return AdapterContext(source_agency="tvp-police", now=GOLDEN_NOW)


def problems_of(adapter: PoliceAdapter, raw: bytes, context: AdapterContext) -> dict[str, str]:
    with pytest.raises(AdapterError) as caught:
        adapter.parse(raw, context)
    return {p.location: p.reason for p in caught.value.problems}


class TestPoliceContract(AdapterContract):
    adapter_name = "police"
    sample_input = (GOLDEN / "found-graded-cse-and-intelligence.in.json").read_bytes()


# --- the package --------------------------------------------------------------------------


def test_public_api_is_listed() -> None:
    for name in adapters.police.__all__:
        assert hasattr(adapters.police, name), name
    assert "PoliceAdapter" in adapters.police.__all__
    assert PoliceAdapter.name == "police"
    assert PoliceAdapter.default_source == "tvp-police"


# --- errors: exact locations --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    sorted(p.name.removesuffix(".err.txt") for p in GOLDEN.glob("*.err.txt")),
)
def test_golden_errors_name_exactly_their_places(
    name: str, police: PoliceAdapter, ctx: AdapterContext
) -> None:
    # The contract matches locations as substrings; here every expected place is a whole one.
    expected = {line.strip() for line in (GOLDEN / f"{name}.err.txt").read_text().splitlines()}
    found = problems_of(police, (GOLDEN / f"{name}.in.json").read_bytes(), ctx)
    for location in expected - {""}:
        assert location in found or any(f.startswith(location) for f in found), (location, found)
    if name != "truncated-json":
        assert set(found) == expected - {""}


def test_every_problem_is_reported_at_once(police: PoliceAdapter, ctx: AdapterContext) -> None:
    found = problems_of(police, (GOLDEN / "many-problems.in.json").read_bytes(), ctx)
    assert found == {
        "missing_person.date_of_birth": "date of birth gives an age over 25",
        "report.reported_at": "is in the future",
        "report.risk_grade": (
            "not a recognised risk grade; expected one of NO APPARENT RISK, LOW, MEDIUM, HIGH, "
            "ABSENT"
        ),
        "report.last_seen.coordinates.latitude": "Input should be less than or equal to 90",
    }


def test_reasons_never_quote_personal_data(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("report-naive-local-bst")
    person = record["missing_person"]
    person["nhs_number"] = "9990000116"  # wrong check digit
    person["date_of_birth"] = "1961-03-09"
    person["sex"] = "Thornlow-Female"
    person["address"]["postcode"] = "ZZ99 Maidenhead"
    person["surname"] = 42
    record["report"]["risk_grade"] = "Maisie-high"
    with pytest.raises(AdapterError) as caught:
        police.parse(encode(record), ctx)
    text = str(caught.value)
    for secret in ("9990000116", "999 000 0116", "1961", "Thornlow", "Maidenhead", "Maisie", "42"):
        assert secret not in text, secret
    assert {p.location for p in caught.value.problems} == {
        "missing_person.nhs_number",
        "missing_person.date_of_birth",
        "missing_person.sex",
        "missing_person.address.postcode",
        "missing_person.surname",
        "report.risk_grade",
    }


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b"", "message"),
        (b"[]", "message"),
        (b'"missing_report"', "message"),
        (b"\xff\xfe{}", "message"),
        (b"{}", "record_type"),
        (b'{"record_type": 3}', "record_type"),
        (b'{"record_type": "missing_report", ', "line 1, column 34"),
        (b'{"a": "\xff"}', "line 1, column 8"),
    ],
)
def test_unreadable_input_is_located(
    raw: bytes, location: str, police: PoliceAdapter, ctx: AdapterContext
) -> None:
    assert location in problems_of(police, raw, ctx)


def test_byte_order_mark_is_accepted(police: PoliceAdapter, ctx: AdapterContext) -> None:
    raw = (GOLDEN / "update-sighting.in.json").read_bytes()
    assert police.parse(b"\xef\xbb\xbf" + raw, ctx) == police.parse(raw, ctx)


def test_json_path_formats_list_indexes_and_drops_the_record_tag() -> None:
    assert json_path(("missing_found", "intelligence", "locations", 0, "kind")) == (
        "intelligence.locations[0].kind"
    )
    assert json_path(("cse", "indicators", 3)) == "cse.indicators[3]"
    assert json_path(()) == ""
    assert json_path(("intelligence", "\n")) == 'intelligence["\\n"]'
    assert json_path(("report", "x" * 100)) == 'report["' + "x" * 40 + '"...]'


def test_strict_json_types(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("report-naive-local-bst")
    record["missing_person"]["nhs_number"] = 9990000115  # a number, not a string
    record["report"]["philomena_protocol"] = "yes"
    record["format_version"] = "1"
    assert set(problems_of(police, encode(record), ctx)) == {
        "missing_person.nhs_number",
        "report.philomena_protocol",
        "format_version",
    }


# --- times --------------------------------------------------------------------------------


def _reported_at(police: PoliceAdapter, ctx: AdapterContext, text: str) -> datetime:
    record = golden("report-naive-local-bst")
    record["report"]["reported_at"] = text
    del record["report"]["last_seen"]["time"]
    body = police.parse(encode(record), ctx)[0].body
    assert isinstance(body, MissingReported)
    return body.reported_at


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        # Spring forward, Sunday 29 March 2026: 01:00 GMT becomes 02:00 BST.
        ("2026-03-29T00:59:00", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),
        ("2026-03-29T01:30:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # in the gap
        ("2026-03-29T02:00:00", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("2026-03-29T02:30:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # Fall back, Sunday 25 October 2026: 02:00 BST becomes 01:00 GMT.
        ("2026-10-25T00:30:00", datetime(2026, 10, 24, 23, 30, tzinfo=UTC)),
        ("2026-10-25T01:30:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # first reading
        ("2026-10-25T02:30:00", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
        # Offsets are taken as given; a naive winter time is GMT.
        ("2026-10-25T01:30:00+00:00", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        ("2026-07-14T22:05:00+01:00", datetime(2026, 7, 14, 21, 5, tzinfo=UTC)),
        ("2026-07-14T21:05:00Z", datetime(2026, 7, 14, 21, 5, tzinfo=UTC)),
        ("2026-01-10T08:00", datetime(2026, 1, 10, 8, 0, tzinfo=UTC)),
        ("2026-07-14T22:05:00.250", datetime(2026, 7, 14, 21, 5, 0, 250000, tzinfo=UTC)),
    ],
)
def test_local_times_across_clock_changes(
    text: str, utc: datetime, police: PoliceAdapter, ctx: AdapterContext
) -> None:
    got = _reported_at(police, ctx, text)
    assert got == utc
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-14",
        "2026-07-14 22:05:00",
        "14/07/2026 22:05",
        "2026-02-30T10:00:00",
        "2026-07-14T25:00:00",
        "1999-12-31T23:00:00Z",
        "2026-07-14T22:05:00+0100",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_malformed_or_implausible_times_are_refused(
    text: str, police: PoliceAdapter, ctx: AdapterContext
) -> None:
    record = golden("report-naive-local-bst")
    record["report"]["reported_at"] = text
    assert "report.reported_at" in problems_of(police, encode(record), ctx)


def test_future_tolerance_is_fifteen_minutes(police: PoliceAdapter, ctx: AdapterContext) -> None:
    assert _reported_at(police, ctx, "2026-11-23T12:14:00Z") == datetime(
        2026, 11, 23, 12, 14, tzinfo=UTC
    )
    record = golden("report-naive-local-bst")
    record["report"]["reported_at"] = "2026-11-23T12:16:00Z"
    assert problems_of(police, encode(record), ctx) == {"report.reported_at": "is in the future"}


def test_every_time_field_is_checked_against_now(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    record = golden("found-graded-cse-and-intelligence")
    future = "2027-03-01T10:00:00"
    record["recorded_at"] = future
    record["found"]["returned_at"] = future
    record["cse"]["screened_at"] = future
    assert set(problems_of(police, encode(record), ctx)) == {
        "recorded_at",
        "found.returned_at",
        "cse.screened_at",
    }


# --- mapping ------------------------------------------------------------------------------


def test_missing_report_maps_every_field(police: PoliceAdapter, ctx: AdapterContext) -> None:
    (event,) = police.parse((GOLDEN / "report-naive-local-bst.in.json").read_bytes(), ctx)
    body = event.body
    assert isinstance(body, MissingReported)
    assert body.episode_id == "TVP-MP-2026-000101"
    assert body.risk_grade is RiskGrade.HIGH
    assert body.reported_at == datetime(2026, 7, 14, 21, 5, tzinfo=UTC)
    assert body.last_seen_at == datetime(2026, 7, 14, 18, 30, tzinfo=UTC)
    assert body.last_seen is not None
    assert (body.last_seen.latitude, body.last_seen.longitude) == (51.5187, -0.7226)
    assert body.last_seen.local_authority == WAM
    assert body.missing_from == WAM  # taken from the address when the force does not say
    assert body.circumstances == "Left home after an argument.\nPhone switched off since 19:45."
    assert body.philomena_protocol is False
    child = event.subject
    assert child is not None
    assert (child.given_name, child.family_name, child.sex) == (
        "Maisie Jade",
        "Thornlow",
        Sex.FEMALE,
    )
    assert child.nhs_number == make_test_nhs_number(11)  # spaces removed
    assert child.police_person_ref == "TVP/P/81034"
    assert child.home_address is not None
    assert child.home_address.postcode == "SL6 9ZZ"  # normalised from "sl69zz"
    assert child.looked_after is None
    meta = event.metadata
    assert meta.occurred_at == body.reported_at
    assert meta.recorded_at == datetime(2026, 7, 14, 21, 10, tzinfo=UTC)
    assert meta.correlation_id == "TVP-MP-2026-000101"
    assert meta.lawful_basis is LawfulBasis.CDA_1998_S115
    assert meta.source.agency == "tvp-police"
    assert meta.source.system == "43/niche-rms"
    assert meta.source.reference == "43260000101#MP-2026-000101-R"


def test_looked_after_child_and_absent_grade(police: PoliceAdapter, ctx: AdapterContext) -> None:
    (event,) = police.parse((GOLDEN / "report-looked-after-absent.in.json").read_bytes(), ctx)
    assert isinstance(event.body, MissingReported)
    assert event.body.risk_grade is RiskGrade.NO_APPARENT_RISK
    assert event.body.philomena_protocol is True
    assert event.subject is not None
    assert event.subject.paris_id == "P-200126"
    looked_after = event.subject.looked_after
    assert looked_after is not None
    assert looked_after.responsible_authority == SLOUGH
    assert looked_after.placed_in == WAM  # the placement address's authority
    assert looked_after.placement_type is PlacementType.RESIDENTIAL  # "Childrens home"
    assert looked_after.out_of_area
    assert event.subject.home_authority == SLOUGH
    assert event.metadata.recorded_at == GOLDEN_NOW  # the record does not say


@pytest.mark.parametrize(
    ("label", "grade"),
    [
        ("NO APPARENT RISK", RiskGrade.NO_APPARENT_RISK),
        ("no_apparent_risk", RiskGrade.NO_APPARENT_RISK),
        ("No-Apparent  Risk", RiskGrade.NO_APPARENT_RISK),
        ("ABSENT", RiskGrade.NO_APPARENT_RISK),
        ("absent", RiskGrade.NO_APPARENT_RISK),
        ("LOW", RiskGrade.LOW),
        ("Medium", RiskGrade.MEDIUM),
        (" high ", RiskGrade.HIGH),
    ],
)
def test_force_risk_labels(
    label: str, grade: RiskGrade, police: PoliceAdapter, ctx: AdapterContext
) -> None:
    record = golden("report-naive-local-bst")
    record["report"]["risk_grade"] = label
    body = police.parse(encode(record), ctx)[0].body
    assert isinstance(body, MissingReported)
    assert body.risk_grade is grade


@pytest.mark.parametrize("label", ["SEVERE", "", "NO RISK", "MEDIUM HIGH"])
def test_unknown_risk_labels_are_refused(
    label: str, police: PoliceAdapter, ctx: AdapterContext
) -> None:
    record = golden("report-naive-local-bst")
    record["report"]["risk_grade"] = label
    assert set(problems_of(police, encode(record), ctx)) == {"report.risk_grade"}


def test_episode_records_correlate(police: PoliceAdapter, ctx: AdapterContext) -> None:
    names = ("report-naive-local-bst", "update-sighting", "found-graded-cse-and-intelligence")
    events = [e for n in names for e in police.parse((GOLDEN / f"{n}.in.json").read_bytes(), ctx)]
    assert len(events) == 5
    assert {e.metadata.correlation_id for e in events} == {"TVP-MP-2026-000101"}
    assert len({e.metadata.event_id for e in events}) == 5
    for event in events:
        if isinstance(event.body, MissingReported | MissingUpdated | MissingFound):
            assert event.body.episode_id == "TVP-MP-2026-000101"


def test_update_maps_grade_sighting_and_note(police: PoliceAdapter, ctx: AdapterContext) -> None:
    (event,) = police.parse((GOLDEN / "update-sighting.in.json").read_bytes(), ctx)
    body = event.body
    assert isinstance(body, MissingUpdated)
    assert body.risk_grade is RiskGrade.NO_APPARENT_RISK
    assert body.sighting is not None
    assert body.sighting.local_authority == SLOUGH
    assert body.note == "Seen by a bus driver with two older males."
    assert event.metadata.occurred_at == datetime(2026, 7, 15, 0, 55, tzinfo=UTC)


def test_found_with_graded_cse_gives_three_events(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    raw = (GOLDEN / "found-graded-cse-and-intelligence.in.json").read_bytes()
    found, screening, intel = police.parse(raw, ctx)
    assert isinstance(found.body, MissingFound)
    assert found.body.found_by is FoundBy.POLICE
    assert found.body.found_at == datetime(2026, 7, 15, 7, 20, tzinfo=UTC)
    assert found.body.returned_at == datetime(2026, 7, 15, 8, 30, tzinfo=UTC)
    assert found.body.found_place is not None
    assert found.body.found_place.local_authority == SLOUGH
    assert isinstance(screening.body, CseScreening)
    assert screening.body.level is CseLevel.LEVEL_2
    assert screening.body.screened_by == "tvp-police"
    assert screening.body.screened_at == found.body.found_at
    assert screening.body.indicators == (  # duplicates dropped, order kept
        CseIndicator.OLDER_ASSOCIATES,
        CseIndicator.VEHICLES,
        CseIndicator.MISSING_EPISODES,
    )
    assert isinstance(intel.body, Intelligence)
    assert intel.body.locations[0].kind is LocationKind.TAKEAWAY
    assert intel.body.locations[0].postcode == "SL1 1ZZ"
    assert intel.body.vehicles[0].registration == "AB12 CDE"
    assert intel.body.associates[0].role == "adult_associate"
    assert intel.body.online_contacts[0].handle == "dee_x_99"
    for event in (found, screening, intel):
        assert event.subject == found.subject
        assert event.metadata.correlation_id == "TVP-MP-2026-000101"


def test_ungraded_indicators_become_an_episode_note(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    found, note = police.parse((GOLDEN / "found-ungraded-indicators.in.json").read_bytes(), ctx)
    assert isinstance(found.body, MissingFound)
    assert found.body.found_by is FoundBy.SELF_RETURNED  # "returned home"
    assert isinstance(note.body, MissingUpdated)
    assert note.body.episode_id == found.body.episode_id
    assert note.body.risk_grade is None
    assert note.body.note == (
        "CSE indicators recorded by police (not graded): gifts or money; substance misuse."
    )


def test_ungraded_indicators_join_an_intelligence_note(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    (event,) = police.parse((GOLDEN / "intelligence-ungraded-indicators.in.json").read_bytes(), ctx)
    assert isinstance(event.body, Intelligence)
    assert event.body.note == (
        "Contact made through a group chat.\n"
        "CSE indicators recorded by police (not graded): online contact."
    )
    assert event.metadata.correlation_id is None
    assert event.metadata.occurred_at == GOLDEN_NOW


def test_intelligence_about_an_area_has_no_subject(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    (event,) = police.parse((GOLDEN / "intelligence-area.in.json").read_bytes(), ctx)
    assert event.subject is None
    assert isinstance(event.body, Intelligence)
    assert event.body.area == WAM
    assert event.metadata.source.reference == "INT-2026-0042"


def test_graded_intelligence_about_a_child(police: PoliceAdapter, ctx: AdapterContext) -> None:
    intel, screening = police.parse(
        (GOLDEN / "intelligence-child-graded.in.json").read_bytes(), ctx
    )
    assert isinstance(intel.body, Intelligence)
    assert intel.body.associates[0].police_person_ref == "TVP/P/90011"
    assert isinstance(screening.body, CseScreening)
    assert screening.body.level is CseLevel.LEVEL_3
    assert screening.body.screened_at == datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
    assert (
        intel.metadata.correlation_id == screening.metadata.correlation_id == ("TVP-MP-2026-000101")
    )


def test_a_grading_needs_a_subject(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("intelligence-area")
    record["cse"] = {"level": 1}
    assert problems_of(police, encode(record), ctx) == {
        "cse.level": "a CSE grading needs a subject"
    }


def test_update_needs_content(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("update-sighting")
    record["update"] = {"at": "2026-07-15T01:55:00+01:00"}
    assert set(problems_of(police, encode(record), ctx)) == {"update"}


def test_empty_vehicle_is_refused(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("intelligence-area")
    record["intelligence"]["vehicles"] = [{"colour": "red"}, {}]
    assert set(problems_of(police, encode(record), ctx)) == {"intelligence.vehicles[1]"}


def test_context_lawful_basis_wins(police: PoliceAdapter) -> None:
    context = AdapterContext("tvp-police", now=GOLDEN_NOW, lawful_basis=LawfulBasis.CA_1989_S47)
    events = police.parse((GOLDEN / "update-sighting.in.json").read_bytes(), context)
    assert {e.metadata.lawful_basis for e in events} == {LawfulBasis.CA_1989_S47}


def test_event_ids_are_stable_and_keyed_by_record(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    record = golden("found-graded-cse-and-intelligence")
    first = [e.metadata.event_id for e in police.parse(encode(record), ctx)]
    later = AdapterContext("tvp-police", now=datetime(2026, 12, 1, tzinfo=UTC))
    record_reformatted = json.dumps(record, indent=4).encode()
    assert [e.metadata.event_id for e in police.parse(record_reformatted, later)] == first
    record["record_id"] = "MP-2026-000101-F2"
    assert not set(first) & {e.metadata.event_id for e in police.parse(encode(record), ctx)}
    other = AdapterContext("other-force", now=GOLDEN_NOW)
    assert not set(first) & {e.metadata.event_id for e in police.parse(encode(record), other)}


def test_control_characters_are_stripped(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("report-naive-local-bst")
    record["missing_person"]["forenames"] = "Mai\x00sie\t\r\nJade\x1b"
    record["report"]["circumstances"] = "Left\x07 home.\r\nPhone off.\x7f"
    (event,) = police.parse(encode(record), ctx)
    assert event.subject is not None
    assert event.subject.given_name == "Maisie Jade"
    assert isinstance(event.body, MissingReported)
    assert event.body.circumstances == "Left home.\r\nPhone off."


def test_text_made_only_of_control_characters_is_empty(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    record = golden("report-naive-local-bst")
    record["report"]["circumstances"] = "\x00\x01 \x02"
    assert problems_of(police, encode(record), ctx) == {"report.circumstances": "must not be empty"}


# --- published JSON Schema ----------------------------------------------------------------


def test_published_schema_matches_the_models() -> None:
    generated = json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("MASH_UPDATE_GOLDEN") == "1" or not SCHEMA_FILE.exists():
        SCHEMA_FILE.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_FILE.write_text(generated)
    assert SCHEMA_FILE.read_text() == generated, (
        "docs/partners/police-record.schema.json is stale: run "
        "MASH_UPDATE_GOLDEN=1 pytest tests/adapters/test_police.py"
    )


def test_schema_lists_every_risk_label() -> None:
    text = json.dumps(record_json_schema())
    for label in RISK_GRADES:
        assert f'"{label}"' in text


def test_schema_accepts_the_published_spelling() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(record_json_schema())
    validator = jsonschema.Draft202012Validator(record_json_schema())
    for seed in (1, 2, 3):
        for name, raw in render(make_scenario(seed)).items():
            errors = [e.message for e in validator.iter_errors(json.loads(raw))]
            assert not errors, (name, errors)


def test_adapter_is_lenient_where_the_schema_is_exact(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    # The schema gives forces the one spelling to send; the adapter also reads the variants
    # force systems are known to produce (case, separators, a postcode without its space).
    jsonschema = pytest.importorskip("jsonschema")
    record = golden("update-sighting")
    assert record["update"]["risk_grade"] == "no_apparent-risk"
    assert not jsonschema.Draft202012Validator(record_json_schema()).is_valid(record)
    assert police.parse(encode(record), ctx)


@pytest.mark.parametrize(
    "name", ["unknown-fields", "unknown-record-type", "list-items", "missing-episode-and-bad-time"]
)
def test_schema_refuses_what_the_adapter_refuses(name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(record_json_schema())
    assert not validator.is_valid(golden(name))


# --- samples ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_rendered_sample_translates(seed: int, police: PoliceAdapter) -> None:
    scenario = make_scenario(seed)
    files = render(scenario)
    context = AdapterContext("tvp-police", now=scenario.now)
    assert all(name.startswith("police/") and name.endswith(".json") for name in files)
    by_episode: dict[str, list[Event]] = {}
    for raw in files.values():
        for event in police.parse(raw, context):
            if event.metadata.correlation_id:
                by_episode.setdefault(event.metadata.correlation_id, []).append(event)
    assert set(by_episode) == {e.episode_id for e in scenario.episodes}
    for episode in scenario.episodes:
        types = [e.body.type for e in by_episode[episode.episode_id]]
        assert types[0] == "missing.reported"
        assert "missing.found" in types
        child = scenario.child(episode.child)
        assert {
            e.subject.police_person_ref for e in by_episode[episode.episode_id] if e.subject
        } == {child.police_person_ref}


def test_samples_show_a_cross_border_find(police: PoliceAdapter) -> None:
    scenario = make_scenario(1)
    files = render(scenario)
    context = AdapterContext("tvp-police", now=scenario.now)
    n = next(i for i, e in enumerate(scenario.episodes, 1) if e.child == "child-2")
    found = police.parse(files[f"police/episode-{n:02d}-found.json"], context)[0]
    assert isinstance(found.body, MissingFound)
    assert found.body.found_place is not None
    assert found.body.found_place.local_authority == WAM
    assert found.subject is not None
    assert found.subject.home_authority == SLOUGH


def test_rendering_is_repeatable() -> None:
    assert render(make_scenario(2)) == render(make_scenario(2))
    assert render(make_scenario(2)) != render(make_scenario(3))


# --- property tests -----------------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


_BASES = [
    golden(name)
    for name in (
        "report-naive-local-bst",
        "update-sighting",
        "found-graded-cse-and-intelligence",
        "intelligence-child-graded",
    )
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_field_value_gives_events_or_located_problems(data: st.DataObject) -> None:
    record = copy.deepcopy(data.draw(st.sampled_from(_BASES)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(record)))
        _set(record, path, data.draw(_JSON_VALUES))
    context = AdapterContext("tvp-police", now=GOLDEN_NOW)
    try:
        events = PoliceAdapter().parse(encode(record), context)
    except AdapterError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.location.strip()
            assert problem.reason.strip()
            assert problem.location.isprintable()
            assert len(problem.location) < 200
    else:
        assert events
        assert all(isinstance(e, Event) for e in events)


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=300))
def test_any_free_text_is_cleaned_or_refused(text: str) -> None:
    record = golden("report-naive-local-bst")
    record["report"]["circumstances"] = text
    record["missing_person"]["forenames"] = text[:200]
    context = AdapterContext("tvp-police", now=GOLDEN_NOW)
    try:
        (event,) = PoliceAdapter().parse(encode(record), context)
    except AdapterError as exc:
        assert {p.location for p in exc.problems} <= {
            "report.circumstances",
            "missing_person.forenames",
        }
        assert all(p.reason == "must not be empty" for p in exc.problems)
    else:
        assert isinstance(event.body, MissingReported)
        assert event.body.circumstances is not None
        assert not any(0 < ord(c) < 32 and c not in "\t\n\r" for c in event.body.circumstances)
        assert "\x00" not in event.body.circumstances


# --- partner documentation ----------------------------------------------------------------

DOC_FILE = SCHEMA_FILE.with_name("police.md")


def test_documented_examples_translate_and_match_the_schema(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    text = DOC_FILE.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert len(blocks) == 3
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(record_json_schema())
    produced = [[e.body.type for e in police.parse(b.encode(), ctx)] for b in blocks]
    assert produced == [
        ["missing.reported"],
        ["missing.found", "cse.screening", "intelligence"],
        ["intelligence"],
    ]
    for block in blocks:
        assert not [e.message for e in validator.iter_errors(json.loads(block))]


def test_documented_error_lines_are_what_the_adapter_says(
    police: PoliceAdapter, ctx: AdapterContext
) -> None:
    text = DOC_FILE.read_text()
    documented = set(text.split("```text\n", 1)[1].split("```", 1)[0].splitlines())
    said: set[str] = set()
    for path in GOLDEN.glob("*.err.txt"):
        with pytest.raises(AdapterError) as caught:
            police.parse(
                path.with_name(path.name.replace(".err.txt", ".in.json")).read_bytes(), ctx
            )
        said |= {str(p) for p in caught.value.problems}
    with pytest.raises(AdapterError) as caught:
        police.parse(b" " * 200_000, ctx)
    said |= {str(p) for p in caught.value.problems}
    assert documented <= said, documented - said


def test_a_context_the_canonical_schema_refuses_gives_a_typed_error(police: PoliceAdapter) -> None:
    context = AdapterContext("Not A Party", now=GOLDEN_NOW)
    with pytest.raises(AdapterError) as caught:
        police.parse((GOLDEN / "update-sighting.in.json").read_bytes(), context)
    (problem,) = caught.value.problems
    assert problem.location == "message"
    assert "canonical SourceRef.agency" in problem.reason


def test_problem_list_is_capped(police: PoliceAdapter, ctx: AdapterContext) -> None:
    record = golden("update-sighting")
    record.update({f"stray_{i}": i for i in range(500)})
    with pytest.raises(AdapterError) as caught:
        police.parse(encode(record), ctx)
    problems = caught.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].location == "message"
    assert problems[-1].reason == f"{500 - MAX_PROBLEMS} more problems"
