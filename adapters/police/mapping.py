"""Police records → canonical events: which events a record gives, and how each field maps.

One record gives one primary event, then, in this order:

* ``cse.screening`` when the record's ``cse`` section carries a ``level`` (the force graded
  the risk); the indicators travel with it;
* ungraded CSE indicators (a ``cse`` section without ``level``) are not a screening: on a
  missing-person record they become a ``missing.updated`` note on the episode; on an
  exploitation record they are appended to the intelligence note;
* ``intelligence`` when a missing-person record also carries an ``intelligence`` section.

Event ids come from the force code, the record id and the event's role, so a resent record
keeps its ids; every event of an episode carries the episode reference as correlation id.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from adapters.base import AdapterContext, event_id_for
from adapters.police import format as native
from schemas.events import (
    Associate,
    CseIndicator,
    CseLevel,
    CseScreening,
    Event,
    EventBody,
    EventMetadata,
    Intelligence,
    IntelligenceLocation,
    LawfulBasis,
    MissingFound,
    MissingReported,
    MissingUpdated,
    OnlineContact,
    Place,
    SourceRef,
    Vehicle,
)
from schemas.person import Address, Child, LookedAfter

__all__ = ["ADAPTER_NAME", "DEFAULT_LAWFUL_BASIS", "DEFAULT_SYSTEM", "record_to_events"]

ADAPTER_NAME = "police"

#: Police share for the prevention of crime and disorder with relevant authorities.
DEFAULT_LAWFUL_BASIS = LawfulBasis.CDA_1998_S115

#: The system name used when a record does not give its ``source_system``.
DEFAULT_SYSTEM = "rms"


def record_to_events(record: native.PoliceRecord, context: AdapterContext) -> list[Event]:
    """The canonical events a validated police record stands for, primary event first.

    Raises:
        pydantic.ValidationError: only if the record breaks a canonical rule the native
            models do not already enforce (a defect; the adapter locates it).
    """
    if isinstance(record, native.ExploitationIntelligenceRecord):
        return _intelligence_record(record, context)
    return _missing_record(record, context)


def _missing_record(record: native.MissingRecord, context: AdapterContext) -> list[Event]:
    episode = record.episode_ref
    primary: EventBody
    if isinstance(record, native.MissingReportRecord):
        primary = _reported(episode, record.report, record.missing_person)
        occurred = record.report.reported_at
    elif isinstance(record, native.MissingUpdateRecord):
        primary = _updated(episode, record.update)
        occurred = record.update.at
    else:
        primary = _found(episode, record.found)
        occurred = record.found.found_at
    bodies: list[tuple[str, EventBody]] = [(primary.type, primary)]
    cse = record.cse
    if cse is not None and cse.level is not None:
        bodies.append(("cse", _screening(cse.level, cse, occurred, context)))
    elif cse is not None and cse.indicators:
        note = _indicator_note(cse.indicators)
        bodies.append(("cse-indicators", MissingUpdated(episode_id=episode, note=note)))
    if record.intelligence is not None:
        bodies.append(("intelligence", _intelligence(record.intelligence, extra_note=None)))
    child = _child(record.missing_person)
    return _events(record, context, occurred, child, bodies)


def _intelligence_record(
    record: native.ExploitationIntelligenceRecord, context: AdapterContext
) -> list[Event]:
    child = _child(record.subject) if record.subject is not None else None
    occurred = record.recorded_at or context.now
    cse = record.cse
    graded = cse is not None and cse.level is not None
    extra = _indicator_note(cse.indicators) if cse is not None and not graded else None
    primary = _intelligence(record.intelligence, extra_note=extra)
    bodies: list[tuple[str, EventBody]] = [(primary.type, primary)]
    # The rules refuse a grading without a subject, so a graded screening always has a child.
    if cse is not None and cse.level is not None and child is not None:
        bodies.append(("cse", _screening(cse.level, cse, occurred, context)))
    return _events(record, context, occurred, child, bodies)


# --- envelope -----------------------------------------------------------------------------


def _events(
    record: native.PoliceRecord,
    context: AdapterContext,
    occurred_at: datetime,
    child: Child | None,
    bodies: list[tuple[str, EventBody]],
) -> list[Event]:
    """One event per (role, body), sharing the record's envelope; the role keys the event id."""
    recorded_at = record.recorded_at or context.now
    source = SourceRef(
        agency=context.source_agency,
        system=f"{record.force_code}/{record.source_system or DEFAULT_SYSTEM}",
        reference=_reference(record),
    )
    basis = context.lawful_basis or DEFAULT_LAWFUL_BASIS
    return [
        Event(
            metadata=EventMetadata(
                event_id=_event_id(record, context, role),
                occurred_at=occurred_at,
                recorded_at=recorded_at,
                source=source,
                correlation_id=record.episode_ref,
                lawful_basis=basis,
            ),
            subject=child,
            body=body,
        )
        for role, body in bodies
    ]


def _event_id(record: native.PoliceRecord, context: AdapterContext, role: str) -> UUID:
    return event_id_for(
        context.source_agency, ADAPTER_NAME, record.force_code, record.record_id, role
    )


def _reference(record: native.PoliceRecord) -> str:
    if record.occurrence_ref is None:
        return record.record_id
    return f"{record.occurrence_ref}#{record.record_id}"


# --- subject ------------------------------------------------------------------------------


def _child(person: native.Person) -> Child:
    address = person.address
    home = None
    if address is not None:
        home = Address(
            lines=tuple(address.lines),
            town=address.town,
            postcode=address.postcode,
            local_authority=address.local_authority,
        )
    looked_after = None
    if person.looked_after is not None:
        details = person.looked_after
        looked_after = LookedAfter(
            responsible_authority=details.placing_authority,
            # A looked-after child's address is the placement, so its authority is the host.
            placed_in=details.placed_in or (address.local_authority if address else None),
            placement_type=details.placement_type,
        )
    return Child(
        given_name=person.forenames,
        family_name=person.surname,
        date_of_birth=person.date_of_birth,
        sex=person.sex,
        nhs_number=person.nhs_number,
        paris_id=person.local_authority_ref,
        police_person_ref=person.police_person_ref,
        home_address=home,
        looked_after=looked_after,
    )


# --- bodies -------------------------------------------------------------------------------


def _place(place: native.Place) -> Place:
    coordinates = place.coordinates
    return Place(
        description=place.description,
        local_authority=place.local_authority,
        latitude=coordinates.latitude if coordinates else None,
        longitude=coordinates.longitude if coordinates else None,
    )


def _reported(episode: str, report: native.Report, person: native.Person) -> MissingReported:
    last_seen = report.last_seen
    home = person.address.local_authority if person.address else None
    return MissingReported(
        episode_id=episode,
        risk_grade=report.risk_grade,
        reported_at=report.reported_at,
        last_seen_at=last_seen.time if last_seen else None,
        last_seen=_place(last_seen) if last_seen else None,
        # Children go missing from where they live (home or placement) unless the force says.
        missing_from=report.missing_from or home,
        circumstances=report.circumstances,
        philomena_protocol=report.philomena_protocol,
    )


def _updated(episode: str, update: native.Update) -> MissingUpdated:
    return MissingUpdated(
        episode_id=episode,
        risk_grade=update.risk_grade,
        sighting=_place(update.sighting) if update.sighting else None,
        note=update.note,
    )


def _found(episode: str, found: native.Found) -> MissingFound:
    return MissingFound(
        episode_id=episode,
        found_at=found.found_at,
        found_place=_place(found.place) if found.place else None,
        found_by=found.found_by,
        returned_at=found.returned_at,
    )


def _unique(indicators: list[CseIndicator]) -> tuple[CseIndicator, ...]:
    return tuple(dict.fromkeys(indicators))


def _screening(
    level: int, cse: native.CseDetails, occurred_at: datetime, context: AdapterContext
) -> CseScreening:
    return CseScreening(
        level=CseLevel(level),
        screened_at=cse.screened_at or occurred_at,
        screened_by=context.source_agency,
        indicators=_unique(cse.indicators),
    )


def _indicator_note(indicators: list[CseIndicator]) -> str | None:
    if not indicators:
        return None
    words = "; ".join(i.value.replace("_", " ") for i in _unique(indicators))
    return f"CSE indicators recorded by police (not graded): {words}."


def _intelligence(details: native.IntelligenceDetails, extra_note: str | None) -> Intelligence:
    note = "\n".join(n for n in (details.note, extra_note) if n) or None
    return Intelligence(
        area=details.area,
        locations=tuple(
            IntelligenceLocation(
                kind=loc.kind,
                description=loc.description,
                local_authority=loc.local_authority,
                postcode=loc.postcode,
            )
            for loc in details.locations
        ),
        vehicles=tuple(
            Vehicle(registration=v.registration, make=v.make, colour=v.colour)
            for v in details.vehicles
        ),
        associates=tuple(
            Associate(role=a.role, description=a.description, police_person_ref=a.police_person_ref)
            for a in details.associates
        ),
        online_contacts=tuple(
            OnlineContact(platform=c.platform, handle=c.handle) for c in details.online_contacts
        ),
        note=note,
    )
