"""The FHIR R4 adapter: the shared contract, Bundle shapes, references, flags, errors, and
agreement with the HL7 v2 adapter about the same child and attendance."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import get_adapter
from adapters.base import AdapterContext, AdapterError
from adapters.health import FhirAdapter
from adapters.health.fhir import MAX_ENTRIES, NHS_NUMBER_SYSTEM
from adapters.health.mapping import FLAG_SYSTEM, SNOMED_SYSTEM
from broker.samples.health import render
from broker.samples.scenario import make_scenario
from schemas.common import make_test_nhs_number
from schemas.events import (
    AttendanceSetting,
    Event,
    LawfulBasis,
    SafeguardingFlag,
    UnscheduledCareAttendance,
)
from schemas.person import Sex
from tests.adapters.contract import GOLDEN_NOW, AdapterContract

NHS = make_test_nhs_number(5151)
CONTEXT = AdapterContext(source_agency="fhft-hospital", now=GOLDEN_NOW)


def _sample(seed: int = 1) -> bytes:
    return render(make_scenario(seed))["health/fhir/attendance-02-V010002.json"]


class TestFhirContract(AdapterContract):
    adapter_name = "fhir"
    sample_input = _sample()


def patient(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Patient",
        "id": "pat-1",
        "identifier": [
            {"system": "https://fhft.example/mrn", "value": "H778812"},
            {"system": NHS_NUMBER_SYSTEM, "value": NHS},
        ],
        "name": [
            {"use": "usual", "family": "Tee", "given": ["Nick"]},
            {"use": "official", "family": "Ashcombe", "given": ["Tilly", "Mae"]},
        ],
        "gender": "female",
        "birthDate": "2012-03-04",
        "address": [
            {"use": "old", "line": ["1 Old Road"], "city": "Slough", "postalCode": "SL1 1ZZ"},
            {
                "use": "home",
                "line": ["7 Heronsgate"],
                "city": "Maidenhead",
                "district": "E06000040",
                "postalCode": "SL6 4ZZ",
            },
        ],
    }
    resource.update(changes)
    return resource


def encounter(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Encounter",
        "id": "enc-1",
        "identifier": [{"value": "V990001"}],
        "status": "in-progress",
        "class": {"code": "EMER"},
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": "2026-11-16T09:00:00+00:00"},
        "location": [{"location": {"identifier": {"value": "RDU01"}}}],
    }
    resource.update(changes)
    return resource


def flag(value: str, *, system: str = FLAG_SYSTEM, **changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Flag",
        "status": "active",
        "code": {"coding": [{"system": system, "code": value}]},
        "subject": {"reference": "Patient/pat-1"},
    }
    resource.update(changes)
    return resource


def bundle(
    *resources: dict[str, Any], kind: str | None = "collection", **changes: Any
) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"https://fhir.fhft.example/{r.get('resourceType')}/{r.get('id', i)}",
            "resource": r,
        }
        for i, r in enumerate(resources)
    ]
    document = {"resourceType": "Bundle", "id": "b-1", "type": kind, "entry": entries}
    document.update(changes)
    return document


def header(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "MessageHeader",
        "id": "mh-1",
        "eventCoding": {"code": "attendance"},
        "source": {"name": "EDPAS", "endpoint": "urn:fhft:ed-pas"},
    }
    resource.update(changes)
    return resource


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def translate(document: dict[str, Any], context: AdapterContext = CONTEXT):
    return FhirAdapter().parse(encode(document), context)


def only(document: dict[str, Any]):
    events = translate(document)
    assert len(events) == 1
    return events[0]


def problems(document: Any) -> dict[str, str]:
    raw = document if isinstance(document, bytes) else encode(document)
    with pytest.raises(AdapterError) as caught:
        FhirAdapter().parse(raw, CONTEXT)
    return {p.location: p.reason for p in caught.value.problems}


# -- well-formed input -----------------------------------------------------------------


def test_collection_bundle_becomes_an_attendance() -> None:
    event = only(bundle(patient(), encounter()))
    child = event.subject
    assert child is not None
    assert child.nhs_number == NHS
    assert (child.given_name, child.family_name) == ("Tilly", "Ashcombe")
    assert child.date_of_birth == date(2012, 3, 4)
    assert child.sex is Sex.FEMALE
    assert child.home_address is not None
    assert child.home_address.lines == ("7 Heronsgate",)
    assert child.home_address.local_authority == "E06000040"
    body = event.body
    assert body.setting is AttendanceSetting.EMERGENCY_DEPARTMENT
    assert body.site == "RDU01"
    assert body.attendance_ref == "V990001"
    assert body.arrived_at == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    assert body.departed_at is None
    meta = event.metadata
    assert meta.source.agency == "fhft-hospital"
    assert meta.source.reference == "V990001"
    assert meta.source.system == "fhir"
    assert meta.recorded_at == GOLDEN_NOW
    assert meta.lawful_basis is LawfulBasis.CA_2004_S11


def test_message_bundle_uses_its_header() -> None:
    document = bundle(header(), patient(), encounter(), kind="message")
    document["timestamp"] = "2026-11-16T09:10:00+00:00"
    event = only(document)
    assert event.metadata.source.system == "EDPAS"
    assert event.metadata.recorded_at == datetime(2026, 11, 16, 9, 10, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["transaction", "batch", "searchset"])
def test_other_bundle_types(kind: str) -> None:
    document = bundle(patient(), encounter(), kind=kind)
    document["entry"].append({"request": {"method": "DELETE", "url": "Flag/old"}})
    assert len(translate(document)) == 1


def test_single_encounter_with_contained_patient() -> None:
    resource = encounter(subject={"reference": "#p"}, contained=[patient(id="p")])
    assert only(resource).subject.nhs_number == NHS


def test_single_encounter_naming_the_child_by_nhs_number() -> None:
    subject = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    event = only(encounter(subject=subject))
    assert event.subject is not None
    assert event.subject.nhs_number == NHS
    assert event.subject.family_name is None


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/pat-1",
        "Patient/pat-1/_history/3",
        "https://fhir.fhft.example/Patient/pat-1",
        "https://other.example/fhir/Patient/pat-1",
    ],
)
def test_references_resolve_by_type_id_and_full_url(reference: str) -> None:
    event = only(bundle(patient(), encounter(subject={"reference": reference})))
    assert event.subject.nhs_number == NHS


def test_references_resolve_by_urn_full_url() -> None:
    document = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:5d7c", "resource": patient(id=None)},
            {
                "fullUrl": "urn:uuid:9e1f",
                "resource": encounter(subject={"reference": "urn:uuid:5d7c"}),
            },
        ],
    }
    assert only(document).subject.nhs_number == NHS


def test_finished_encounter_occurs_at_its_end() -> None:
    period = {"start": "2026-11-16T09:00:00Z", "end": "2026-11-16T12:30:00Z"}
    event = only(bundle(patient(), encounter(status="finished", period=period)))
    assert event.body.departed_at == datetime(2026, 11, 16, 12, 30, tzinfo=UTC)
    assert event.metadata.occurred_at == event.body.departed_at


@pytest.mark.parametrize(
    ("start", "utc"),
    [
        ("2026-03-29T00:30:00", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),
        ("2026-03-29T02:30:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("2026-10-25T00:30:00", datetime(2026, 10, 24, 23, 30, tzinfo=UTC)),
        ("2026-10-25T01:30:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("2026-10-25T01:30:00+00:00", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        ("2026-10-25T02:30:00", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
        ("2026-07-10T12:00:00+01:00", datetime(2026, 7, 10, 11, 0, tzinfo=UTC)),
        ("2026-07-10T12:00:00Z", datetime(2026, 7, 10, 12, 0, tzinfo=UTC)),
        ("2026-07-10T12:00", datetime(2026, 7, 10, 11, 0, tzinfo=UTC)),
    ],
)
def test_times_across_the_clock_changes(start: str, utc: datetime) -> None:
    event = only(bundle(patient(), encounter(period={"start": start})))
    assert event.body.arrived_at == utc


def test_recorded_at_from_last_updated() -> None:
    resource = encounter(meta={"lastUpdated": "2026-11-16T09:20:00.123+00:00"})
    event = only(bundle(patient(), resource))
    assert event.metadata.recorded_at == datetime(2026, 11, 16, 9, 20, 0, 123000, tzinfo=UTC)


def test_context_decides_agency_and_lawful_basis() -> None:
    context = AdapterContext("rbh-hospital", now=GOLDEN_NOW, lawful_basis=LawfulBasis.CA_1989_S17)
    event = translate(bundle(patient(), encounter()), context)[0]
    assert event.metadata.source.agency == "rbh-hospital"
    assert event.metadata.lawful_basis is LawfulBasis.CA_1989_S17


# -- settings and sites -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({}, AttendanceSetting.EMERGENCY_DEPARTMENT),
        (
            {"class": {"code": "AMB"}, "serviceType": {"coding": [{"code": "GUM"}]}},
            AttendanceSetting.SEXUAL_HEALTH,
        ),
        ({"class": {"code": "AMB"}, "serviceType": {"coding": [{"code": "360"}]}},
         AttendanceSetting.SEXUAL_HEALTH),
        ({"class": {"code": "AMB"}, "serviceType": {"coding": [{"code": "UTC"}]}},
         AttendanceSetting.URGENT_TREATMENT_CENTRE),
        ({"class": {"code": "AMB"}}, AttendanceSetting.OTHER),
        ({"class": {"code": "IMP"}, "serviceType": {"text": "GUM"}}, AttendanceSetting.OTHER),
    ],
)  # fmt: skip
def test_setting_from_service_type_then_class(
    changes: dict[str, Any], setting: AttendanceSetting
) -> None:
    assert only(bundle(patient(), encounter(**changes))).body.setting is setting


def test_site_from_location_resource_provider_or_sender() -> None:
    location = {"resourceType": "Location", "id": "loc-1", "name": "Wexham Park ED"}
    by_reference = encounter(location=[{"location": {"reference": "Location/loc-1"}}])
    assert only(bundle(patient(), location, by_reference)).body.site == "Wexham Park ED"
    coded = dict(location, identifier=[{"value": "RDU02"}])
    assert only(bundle(patient(), coded, by_reference)).body.site == "RDU02"
    provider = encounter(location=None, serviceProvider={"identifier": {"value": "RDU"}})
    assert only(bundle(patient(), provider)).body.site == "RDU"
    sender = header(sender={"identifier": {"value": "RDU"}})
    bare = encounter(location=None)
    assert only(bundle(sender, patient(), bare, kind="message")).body.site == "RDU"
    assert "Bundle.entry[1].resource.location" in problems(bundle(patient(), bare))


# -- flags ------------------------------------------------------------------------------


def test_flags_by_code_snomed_and_text() -> None:
    flags = [
        flag("CPP"),
        flag("919461000000108", system=SNOMED_SYSTEM),
        flag("zzz", system="https://other.example", code={"text": "Looked after child"}),
        flag("x", code={"coding": [{"system": "https://other.example", "display": "Self-harm"}]}),
        flag("ALLERGY", system="https://other.example"),  # not a safeguarding flag: ignored
        flag("SGC", status="inactive"),
        flag("ASLT", status="entered-in-error"),
    ]
    event = only(bundle(patient(), encounter(), *flags))
    assert event.body.flags == (
        SafeguardingFlag.CHILD_PROTECTION_PLAN,
        SafeguardingFlag.LOOKED_AFTER,
        SafeguardingFlag.CSE_CONCERN,
        SafeguardingFlag.SELF_HARM,
    )


def test_encounter_flags_stay_with_their_encounter() -> None:
    first = encounter()
    second = encounter(id="enc-2", identifier=[{"value": "V990002"}])
    flags = [
        flag("CPP"),  # the child's: every attendance
        flag("ASLT", encounter={"reference": "Encounter/enc-2"}),
        flag("SUB", subject={"identifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}),
    ]
    events = translate(bundle(patient(), first, second, *flags))
    assert [e.body.attendance_ref for e in events] == ["V990001", "V990002"]
    assert events[0].body.flags == (
        SafeguardingFlag.CHILD_PROTECTION_PLAN,
        SafeguardingFlag.SUBSTANCE_MISUSE,
    )
    assert events[1].body.flags == (
        SafeguardingFlag.CHILD_PROTECTION_PLAN,
        SafeguardingFlag.SUBSTANCE_MISUSE,
        SafeguardingFlag.ASSAULT,
    )
    assert events[0].metadata.event_id != events[1].metadata.event_id


def test_flags_alone_are_refused() -> None:
    found = problems(bundle(patient(), flag("CPP")))
    assert "no Encounter" in found["Bundle.entry"]
    assert "no Encounter" in problems(flag("CPP"))["resourceType"]


def test_flag_references_must_resolve() -> None:
    orphan = flag("CPP", subject={"reference": "Patient/nobody"})
    lost = flag("CPP", encounter={"reference": "Encounter/nowhere"})
    found = problems(bundle(patient(), encounter(), orphan, lost))
    assert "Bundle.entry[2].resource.subject.reference" in found
    assert "Bundle.entry[3].resource.encounter.reference" in found


def test_skipped_encounters_give_no_events() -> None:
    assert translate(bundle(patient(), encounter(status="entered-in-error"))) == []
    assert translate(bundle(patient(), encounter(status="cancelled"))) == []


# -- errors ------------------------------------------------------------------------------


def test_message_bundle_must_start_with_its_header() -> None:
    found = problems(bundle(patient(), header(), encounter(), kind="message"))
    assert "Bundle.entry[0].resource.resourceType" in found
    assert "Bundle.entry" in problems(bundle(kind="message"))


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (bundle(patient(), encounter(), kind="document"), "Bundle.type"),
        (bundle(patient(), encounter(), kind=None), "Bundle.type"),
        (bundle(patient(identifier=[{"system": NHS_NUMBER_SYSTEM, "value": "9990000000"}]),
                encounter()), "Bundle.entry[0].resource.identifier[0].value"),
        (bundle(patient(birthDate="2012-03"), encounter()), "Bundle.entry[0].resource.birthDate"),
        (bundle(patient(birthDate="2027-01-01"), encounter()),
         "Bundle.entry[0].resource.birthDate"),
        (bundle(patient(gender="f"), encounter()), "Bundle.entry[0].resource.gender"),
        (bundle(patient(address=[{"postalCode": "NOPE"}]), encounter()),
         "Bundle.entry[0].resource.address[0].postalCode"),
        (bundle(patient(name="Tilly"), encounter()), "Bundle.entry[0].resource.name"),
        (bundle(patient(), encounter(period={"end": "2026-11-16T10:00:00Z"})),
         "Bundle.entry[1].resource.period.start"),
        (bundle(patient(), encounter(period={"start": "2026-11-16"})),
         "Bundle.entry[1].resource.period.start"),
        (bundle(patient(), encounter(period={"start": "2026-12-16T10:00:00Z"})),
         "Bundle.entry[1].resource.period.start"),
        (bundle(patient(), encounter(period={"start": "2026-11-16T10:00:00Z",
                                             "end": "2026-11-16T09:00:00Z"})),
         "Bundle.entry[1].resource.period.end"),
        (bundle(patient(), encounter(**{"class": None})), "Bundle.entry[1].resource.class"),
        (bundle(patient(), encounter(**{"class": [{"code": "EMER"}]})),
         "Bundle.entry[1].resource.class"),
        (bundle(patient(), encounter(subject=None)), "Bundle.entry[1].resource.subject"),
        (bundle(patient(), encounter(subject={"reference": "Patient/other"})),
         "Bundle.entry[1].resource.subject.reference"),
        (bundle(patient(), encounter(identifier={"value": "V1"})),
         "Bundle.entry[1].resource.identifier"),
        (bundle(patient(), encounter(status=None)), "Bundle.entry[1].resource.status"),
        (bundle(patient(), {"id": "x"}), "Bundle.entry[1].resource.resourceType"),
        ({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "x"}]},
         "Bundle.entry[0].resource"),
        ({"resourceType": "Bundle", "type": "collection", "entry": {"resource": {}}},
         "Bundle.entry"),
        ({"resourceType": "Bundle", "type": "collection", "entry": [7]}, "Bundle.entry[0]"),
        ([], "message"),
        ({"type": "collection"}, "resourceType"),
    ],
)  # fmt: skip
def test_errors_are_located_by_fhir_path(document: Any, where: str) -> None:
    assert where in problems(document)


def test_every_problem_is_reported_at_once() -> None:
    document = bundle(
        patient(birthDate="03/04/2012", gender="girl"),
        encounter(period={"start": "soon"}, subject={"reference": "Patient/pat-1"}),
    )
    found = problems(document)
    assert {
        "Bundle.entry[0].resource.birthDate",
        "Bundle.entry[0].resource.gender",
        "Bundle.entry[1].resource.period.start",
    } <= set(found)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"\xff\xfe{}", b"[" * 100_000, b'{"resourceType": 1}', b"1e999999"]
)
def test_unreadable_json_is_a_typed_error(raw: bytes) -> None:
    with pytest.raises(AdapterError) as caught:
        FhirAdapter().parse(raw, CONTEXT)
    assert all(p.location and p.reason for p in caught.value.problems)


def test_too_many_entries_are_refused() -> None:
    document = bundle(patient(), *[encounter(id=f"e{i}") for i in range(MAX_ENTRIES)])
    assert "Bundle.entry" in problems(document)


def test_errors_never_carry_personal_data() -> None:
    bad = patient(
        identifier=[{"system": NHS_NUMBER_SYSTEM, "value": "9990000000"}],
        birthDate="2027-01-01",
        address=[{"line": ["1 Road"], "postalCode": "BAD"}],
    )
    with pytest.raises(AdapterError) as caught:
        FhirAdapter().parse(encode(bundle(bad, encounter())), CONTEXT)
    text = str(caught.value)
    for personal in ("9990000000", "Ashcombe", "Tilly", "2027", "1 Road", "BAD"):
        assert personal not in text


def test_event_ids_are_deterministic_and_follow_versions() -> None:
    document = bundle(patient(), encounter())
    first = only(document).metadata.event_id
    assert only(copy.deepcopy(document)).metadata.event_id == first
    assert only(bundle(patient(), encounter(), id="b-2")).metadata.event_id != first
    unnamed = bundle(patient(), encounter(), id=None)
    finished = bundle(
        patient(),
        encounter(status="finished", period={"start": "2026-11-16T09:00:00Z",
                                             "end": "2026-11-16T10:00:00Z"}),
        id=None,
    )  # fmt: skip
    assert only(unnamed).metadata.event_id != only(finished).metadata.event_id


_PATHS = [
    ("patient", "birthDate"), ("patient", "gender"), ("patient", "name"),
    ("patient", "identifier"), ("patient", "address"), ("encounter", "period"),
    ("encounter", "class"), ("encounter", "subject"), ("encounter", "status"),
    ("encounter", "identifier"), ("encounter", "location"), ("flag", "code"),
    ("flag", "subject"), ("flag", "status"), ("bundle", "type"), ("bundle", "entry"),
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["2026-11-16T09:00:00Z", NHS, "EMER", "Patient/pat-1", "active"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["code", "value", "reference", "start", "system"]),
                      children, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(_PATHS), _json), max_size=4))
def test_random_element_values_give_events_or_typed_errors(
    changes: list[tuple[tuple[str, str], Any]],
) -> None:
    parts = {"patient": patient(), "encounter": encounter(), "flag": flag("CPP")}
    for (where, key), value in changes:
        if where != "bundle":
            parts[where][key] = value
    document = bundle(parts["patient"], parts["encounter"], parts["flag"])
    for (where, key), value in changes:
        if where == "bundle":
            document[key] = value
    try:
        events = FhirAdapter().parse(encode(document), CONTEXT)
    except AdapterError as exc:
        assert all(p.location.strip() and p.reason.strip() for p in exc.problems)
    else:
        assert all(isinstance(e, Event) for e in events)


# -- samples, and agreement with HL7 v2 -------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_rendered_sample_translates(seed: int) -> None:
    scenario = make_scenario(seed)
    context = AdapterContext(source_agency="fhft-hospital", now=scenario.now)
    rendered = {k: v for k, v in render(scenario).items() if k.endswith(".json")}
    assert len(rendered) == len(scenario.attendances)
    for raw in rendered.values():
        assert len(get_adapter("fhir").parse(raw, context)) == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hl7_and_fhir_give_the_same_child_and_attendance(seed: int) -> None:
    scenario = make_scenario(seed)
    context = AdapterContext(source_agency="fhft-hospital", now=scenario.now)
    files = render(scenario)
    for n, attendance in enumerate(scenario.attendances, start=1):
        stem = f"attendance-{n:02d}-{attendance.visit_number}"
        (via_hl7,) = get_adapter("hl7v2").parse(files[f"health/hl7v2/{stem}-a03.hl7"], context)
        (via_fhir,) = get_adapter("fhir").parse(files[f"health/fhir/{stem}.json"], context)
        assert via_hl7.subject == via_fhir.subject
        assert via_hl7.body == via_fhir.body
        assert via_hl7.metadata.occurred_at == via_fhir.metadata.occurred_at
        assert via_hl7.metadata.source.reference == via_fhir.metadata.source.reference
        assert isinstance(via_hl7.body, UnscheduledCareAttendance)
        assert via_hl7.body.flags == tuple(
            f for f in SafeguardingFlag if f in set(attendance.flags)
        )
        child = scenario.child(attendance.child)
        assert via_fhir.subject is not None
        assert via_fhir.subject.nhs_number == child.nhs_number
        assert via_fhir.subject.date_of_birth == child.date_of_birth
