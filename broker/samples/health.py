"""Sample hospital messages for the scenario's attendances: HL7 v2 ADT and FHIR R4 Bundles.

Each attendance becomes an ``ADT^A04`` at registration (with the flags the child
protection information sharing service shows at the front desk), an ``ADT^A03`` at
discharge (with every flag), and a FHIR message Bundle describing the finished
attendance. The A03 and the Bundle describe the same child and the same attendance.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from adapters.base import LONDON, london_to_utc
from adapters.health.fhir import NHS_NUMBER_SYSTEM
from adapters.health.hl7_message import Separators, escape
from adapters.health.hl7v2 import FLAG_OBSERVATION
from adapters.health.mapping import FLAG_CODES, FLAG_SYSTEM, HL7_FLAG_SYSTEM, SERVICE_SYSTEM
from broker.samples.scenario import Attendance, ChildRecord, Scenario
from schemas.events import AttendanceSetting, SafeguardingFlag
from schemas.person import Sex

__all__ = ["fhir_bundle", "hl7_message", "render"]

#: The trust's ODS code (the sites are RDU01, RDU50, ...).
TRUST = "RDU"
SENDING_APPLICATION = "EDPAS"
ODS_ORGANIZATION = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE = "https://fhir.nhs.uk/Id/ods-site-code"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

#: Flags known when the child is registered: the national child protection service's.
_AT_REGISTRATION = frozenset(
    {SafeguardingFlag.CHILD_PROTECTION_PLAN, SafeguardingFlag.LOOKED_AFTER}
)
_CODE_FOR = {flag: (code, display) for code, (flag, display) in FLAG_CODES.items()}
_SEX = {Sex.MALE: ("M", "male"), Sex.FEMALE: ("F", "female"), Sex.OTHER: ("O", "other")}
_SEPS = Separators()
_NAMESPACE = uuid.UUID("0f6f3a8e-7d0a-4d8e-9a55-7c1f2b3e4d01")
_SEND_DELAY = timedelta(minutes=3)


def render(scenario: Scenario) -> dict[str, bytes]:
    """Every health sample for ``scenario``: relative path → native message bytes."""
    files: dict[str, bytes] = {}
    for n, attendance in enumerate(scenario.attendances, start=1):
        child = scenario.child(attendance.child)
        stem = f"attendance-{n:02d}-{attendance.visit_number}"
        for trigger in ("A04", "A03"):
            files[f"health/hl7v2/{stem}-{trigger.lower()}.hl7"] = hl7_message(
                child, attendance, trigger
            )
        files[f"health/fhir/{stem}.json"] = fhir_bundle(child, attendance)
    return files


def _hl7_time(instant: datetime) -> str:
    # Hospital systems send London wall time without an offset; where that is ambiguous
    # (the hour the clocks go back) the offset is written so the instant survives.
    local = instant.astimezone(LONDON)
    text = local.strftime("%Y%m%d%H%M%S")
    if london_to_utc(local.replace(tzinfo=None, fold=0)) != instant:
        text += local.strftime("%z")
    return text


def _fhir_time(instant: datetime) -> str:
    return instant.astimezone(LONDON).isoformat(timespec="seconds")


def _e(text: str) -> str:
    return escape(text, _SEPS)


def hl7_message(child: ChildRecord, attendance: Attendance, trigger: str) -> bytes:
    """An HL7 v2.4 ``ADT^<trigger>`` (A04 or A03) for one attendance."""
    discharge = trigger == "A03"
    sent = (attendance.departed_at if discharge else attendance.arrived_at) + _SEND_DELAY
    sex = _SEX.get(child.sex, ("U", "unknown"))[0]
    sexual_health = attendance.setting is AttendanceSetting.SEXUAL_HEALTH
    point_of_care = "GUM" if sexual_health else "AE"
    pv1 = ["PV1", "1", "O" if sexual_health else "E", f"{point_of_care}^^^{attendance.site}"]
    pv1 += [""] * 6 + ["GUM" if sexual_health else "180"]  # PV1-10 hospital service
    pv1 += [""] * 8 + [attendance.visit_number]  # PV1-19 visit number
    pv1 += [""] * 24 + [_hl7_time(attendance.arrived_at)]  # PV1-44 admit
    if discharge:
        pv1.append(_hl7_time(attendance.departed_at))  # PV1-45 discharge
    address = "^".join(
        (
            _e(child.address_line),
            "",
            _e(child.town),
            "",
            _e(child.postcode),
            "GBR",
            "H",
            "",
            child.home_authority,
        )
    )
    segments = [
        "|".join(
            (
                "MSH",
                _SEPS.encoding_characters,
                SENDING_APPLICATION,
                TRUST,
                "MASH",
                "WAM",
                _hl7_time(sent),
                "",
                f"ADT^{trigger}^ADT_A01" if trigger != "A03" else "ADT^A03^ADT_A03",
                f"{attendance.visit_number}{trigger}",
                "P",
                "2.4",
            )
        ),
        f"EVN|{trigger}|{_hl7_time(sent)}",
        "|".join(
            (
                "PID",
                "1",
                "",
                f"{child.nhs_number}^^^NHS^NH",
                "",
                f"{_e(child.family_name)}^{_e(child.given_name)}^^^^^L",
                "",
                child.date_of_birth.strftime("%Y%m%d"),
                sex,
                "",
                "",
                address,
            )
        ),
        "|".join(pv1),
    ]
    flags = [f for f in attendance.flags if discharge or f in _AT_REGISTRATION]
    for i, flag in enumerate(flags, start=1):
        code, display = _CODE_FOR[flag]
        coded = f"{code}^{_e(display)}^{HL7_FLAG_SYSTEM}"
        if i % 2:
            segments.append(f"ZXX|{i}|{coded}|A|{_hl7_time(attendance.arrived_at)}")
        else:
            observation = f"{FLAG_OBSERVATION}^Safeguarding flag^{HL7_FLAG_SYSTEM}"
            segments.append(f"OBX|{i}|CE|{observation}||{coded}||||||F")
    return ("\r".join(segments) + "\r").encode("utf-8")


def _uuid(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '/'.join(parts))}"


def fhir_bundle(child: ChildRecord, attendance: Attendance) -> bytes:
    """A FHIR R4 message Bundle describing one finished attendance and its flags."""
    visit = attendance.visit_number
    header_url, patient_url, encounter_url = (
        _uuid(visit, kind) for kind in ("header", "patient", "encounter")
    )
    sexual_health = attendance.setting is AttendanceSetting.SEXUAL_HEALTH
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "identifier": [{"use": "official", "value": visit}],
        "status": "finished",
        "class": {
            "system": ACT_CODE,
            "code": "AMB" if sexual_health else "EMER",
            "display": "ambulatory" if sexual_health else "emergency",
        },
        "subject": {"reference": patient_url},
        "period": {
            "start": _fhir_time(attendance.arrived_at),
            "end": _fhir_time(attendance.departed_at),
        },
        "location": [{"location": {"identifier": {"system": ODS_SITE, "value": attendance.site}}}],
        "serviceProvider": {"identifier": {"system": ODS_ORGANIZATION, "value": TRUST}},
    }
    if sexual_health:
        encounter["serviceType"] = {
            "coding": [{"system": SERVICE_SYSTEM, "code": "GUM", "display": "Sexual health"}]
        }
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": child.nhs_number}],
        "name": [{"use": "official", "family": child.family_name, "given": [child.given_name]}],
        "gender": _SEX.get(child.sex, ("U", "unknown"))[1],
        "birthDate": child.date_of_birth.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [child.address_line],
                "city": child.town,
                "district": child.home_authority,
                "postalCode": child.postcode,
            }
        ],
    }
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": header_url,
            "resource": {
                "resourceType": "MessageHeader",
                "eventCoding": {"system": "urn:mash-broker:event", "code": "attendance-discharge"},
                "source": {"name": SENDING_APPLICATION, "endpoint": "urn:fhft:ed-pas"},
                "sender": {"identifier": {"system": ODS_ORGANIZATION, "value": TRUST}},
                "focus": [{"reference": encounter_url}],
            },
        },
        {"fullUrl": patient_url, "resource": patient},
        {"fullUrl": encounter_url, "resource": encounter},
    ]
    for flag in attendance.flags:
        code, display = _CODE_FOR[flag]
        resource: dict[str, Any] = {
            "resourceType": "Flag",
            "status": "active",
            "code": {
                "coding": [{"system": FLAG_SYSTEM, "code": code, "display": display}],
                "text": display,
            },
            "subject": {"reference": patient_url},
        }
        if flag not in _AT_REGISTRATION:
            # Status flags belong to the child; concerns to this attendance.
            resource["encounter"] = {"reference": encounter_url}
        entries.append({"fullUrl": _uuid(visit, "flag", code), "resource": resource})
    bundle = {
        "resourceType": "Bundle",
        "id": _uuid(visit, "bundle").removeprefix("urn:uuid:"),
        "type": "message",
        "timestamp": _fhir_time(attendance.departed_at + _SEND_DELAY),
        "entry": entries,
    }
    return (json.dumps(bundle, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
