"""Synthetic children, events and records for the intake tests (invented names, 999 NHS numbers)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from uuid import UUID

from schemas.common import make_test_nhs_number
from schemas.events import Event, EventBody, EventMetadata, LawfulBasis, SourceRef
from schemas.person import Address, Child, LookedAfter, Sex

WAM = "E06000040"
SLOUGH = "E06000039"
READING = "E06000038"
BRACKNELL = "E06000036"

_serial = itertools.count(1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def child(
    *,
    given: str | None = "Maisie",
    family: str | None = "Thornlow",
    born: date | None = date(2012, 5, 17),
    sex: Sex | None = Sex.FEMALE,
    nhs: int | None = 7,
    paris: str | None = None,
    police: str | None = None,
    home: str | None = WAM,
    looked_after: LookedAfter | None = None,
) -> Child:
    """A synthetic child; pass None to leave an identifier out."""
    return Child(
        given_name=given,
        family_name=family,
        date_of_birth=born,
        sex=sex,
        nhs_number=make_test_nhs_number(nhs) if nhs is not None else None,
        paris_id=paris,
        police_person_ref=police,
        home_address=Address(town="Maidenhead", local_authority=home) if home else None,
        looked_after=looked_after,
    )


def event(
    body: EventBody,
    *,
    subject: Child | None = None,
    at: datetime | None = None,
    correlation_id: str | None = None,
    event_id: UUID | None = None,
) -> Event:
    """An event with fresh metadata around ``body``."""
    when = at or utc(2026, 11, 20, 21, 30)
    meta = EventMetadata(
        event_id=event_id or UUID(int=next(_serial)),
        occurred_at=when,
        recorded_at=when,
        source=SourceRef(agency="tvp-police", system="niche-rms", reference="OCC-1"),
        correlation_id=correlation_id,
        lawful_basis=LawfulBasis.CDA_1998_S115,
    )
    return Event(metadata=meta, subject=subject, body=body)
