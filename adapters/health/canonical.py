"""The canonical child and attendance event both health adapters build, from plain fields.

The HL7 v2 and FHIR adapters read their formats into ``PatientFields`` and
``AttendanceFields`` and hand them here, so the same patient always becomes the same
``Child`` and the same attendance the same body, whichever format carried it. Each field
travels with the native location it came from, so a problem found here is reported where
the partner can find it (``PID-7``, ``Bundle.entry[1].resource.birthDate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from adapters.base import (
    AdapterContext,
    Problem,
    check_date_of_birth,
    check_not_future,
    event_id_for,
)
from schemas.events import (
    AttendanceSetting,
    Event,
    EventMetadata,
    LawfulBasis,
    SafeguardingFlag,
    SourceRef,
    UnscheduledCareAttendance,
)
from schemas.person import Child, Sex

__all__ = [
    "DEFAULT_LAWFUL_BASIS",
    "AttendanceFields",
    "PatientFields",
    "attendance_event",
    "build_child",
]

#: Health shares attendances under the duty to safeguard unless the ingress says otherwise.
DEFAULT_LAWFUL_BASIS = LawfulBasis.CA_2004_S11


@dataclass(slots=True)
class PatientFields:
    """What a health message says about the patient; ``where`` maps each field name to
    its native location."""

    where: dict[str, str]
    nhs_number: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    date_of_birth: date | None = None
    sex: Sex | None = None
    address_lines: tuple[str, ...] = ()
    town: str | None = None
    postcode: str | None = None
    local_authority: str | None = None


@dataclass(slots=True)
class AttendanceFields:
    """What a health message says about one attendance, with native locations in ``where``."""

    where: dict[str, str]
    setting: AttendanceSetting
    site: str
    arrived_at: datetime
    departed_at: datetime | None = None
    attendance_ref: str | None = None
    flags: tuple[SafeguardingFlag, ...] = ()
    note: str | None = None
    #: The partner's system and its reference for the event's ``metadata.source``.
    system: str = "unknown"
    reference: str = "unknown"
    occurred_at: datetime | None = None
    recorded_at: datetime | None = None
    #: Native ids that identify this message, for the deterministic event id.
    native_ids: tuple[str, ...] = field(default_factory=tuple)


def _where(where: dict[str, str], loc: tuple[str | int, ...], default: str) -> str:
    # pydantic names the canonical field; the partner needs the native one.
    for depth in range(len(loc), 0, -1):
        key = ".".join(str(p) for p in loc[:depth])
        if key in where:
            return where[key]
    return default


def _reason(err: Any) -> str:
    # pydantic prefixes the schema's own messages and quotes its patterns; the partner
    # needs the reason in words.
    if err["type"] == "string_pattern_mismatch":
        if err["loc"] and err["loc"][-1] == "postcode":
            return "not a valid UK postcode"
        return "not in the expected format"
    return str(err["msg"]).removeprefix("Value error, ")


def build_child(fields: PatientFields, now: datetime, problems: list[Problem]) -> Child | None:
    """The canonical child for ``fields``, or None with the reasons added to ``problems``."""
    found = len(problems)
    date_of_birth = fields.date_of_birth
    if date_of_birth is not None:
        reason = check_date_of_birth(date_of_birth, now)
        if reason:
            problems.append(Problem(fields.where.get("date_of_birth", "date_of_birth"), reason))
            date_of_birth = None  # still validate the rest, so every problem is reported
    address = None
    if fields.address_lines or fields.town or fields.postcode or fields.local_authority:
        address = {
            "lines": fields.address_lines[:5],
            "town": fields.town,
            "postcode": fields.postcode,
            "local_authority": fields.local_authority,
        }
    try:
        child = Child.model_validate(
            {
                "given_name": fields.given_name,
                "family_name": fields.family_name,
                "date_of_birth": date_of_birth,
                "sex": fields.sex,
                "nhs_number": fields.nhs_number,
                "home_address": address,
            }
        )
    except ValidationError as exc:
        default = fields.where.get("patient", "patient")
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(err["loc"])
            if loc and loc[0] == "home_address":
                loc = loc[1:]
                if loc[:1] == ("lines",):
                    loc = ("address_lines",)
                elif loc:
                    loc = (str(loc[0]),)
            problems.append(Problem(_where(fields.where, loc, default), _reason(err)))
        return None
    return child if len(problems) == found else None


def attendance_event(
    adapter: str,
    child: Child,
    fields: AttendanceFields,
    context: AdapterContext,
    problems: list[Problem],
) -> Event | None:
    """The canonical attendance event, or None with the reasons added to ``problems``."""
    found = len(problems)
    where = fields.where
    for name in ("arrived_at", "departed_at", "recorded_at"):
        value = getattr(fields, name)
        if value is not None:
            reason = check_not_future(value, context.now)
            if reason:
                problems.append(Problem(where.get(name, name), reason))
    if fields.departed_at is not None and fields.departed_at < fields.arrived_at:
        problems.append(
            Problem(where.get("departed_at", "departed_at"), "departure is before arrival")
        )
    if len(problems) > found:
        return None
    try:
        body = UnscheduledCareAttendance(
            setting=fields.setting,
            site=fields.site,
            arrived_at=fields.arrived_at,
            departed_at=fields.departed_at,
            attendance_ref=fields.attendance_ref,
            flags=fields.flags,
            note=fields.note,
        )
        metadata = EventMetadata(
            event_id=event_id_for(context.source_agency, adapter, *fields.native_ids),
            occurred_at=fields.occurred_at or fields.arrived_at,
            recorded_at=fields.recorded_at or context.now,
            source=SourceRef(
                agency=context.source_agency, system=fields.system, reference=fields.reference
            ),
            lawful_basis=context.lawful_basis or DEFAULT_LAWFUL_BASIS,
        )
        return Event(metadata=metadata, subject=child, body=body)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(err["loc"])
            problems.append(
                Problem(_where(where, loc, where.get("message", "message")), _reason(err))
            )
        return None
