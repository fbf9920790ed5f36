"""One valid example event per body type: templates for partners and fixtures for tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from uuid import UUID

from schemas.common import make_test_nhs_number
from schemas.events import (
    AttendanceSetting,
    CaseStatus,
    CseIndicator,
    CseLevel,
    CseScreening,
    CseTrackerEntry,
    Event,
    EventBody,
    EventMetadata,
    EventType,
    FoundBy,
    Intelligence,
    IntelligenceLocation,
    LawfulBasis,
    LocationKind,
    MissingFound,
    MissingReported,
    MissingUpdated,
    Place,
    ReturnHomeInterview,
    RiskGrade,
    SafeguardingFlag,
    SourceRef,
    UnscheduledCareAttendance,
    Vehicle,
)
from schemas.person import Address, Child, LookedAfter, PlacementType, Sex

__all__ = ["example_event", "example_types"]

_WHEN = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
_EPISODE = "TVP-MP-2026-000123"
_W_AND_M = "E06000040"
_SLOUGH = "E06000039"


def _child() -> Child:
    return Child(
        given_name="Ellie",
        family_name="Brackwater",
        date_of_birth=date(2011, 4, 2),
        sex=Sex.FEMALE,
        nhs_number=make_test_nhs_number(101),
        paris_id="P-100234",
        police_person_ref="TVP/P/77812",
        home_address=Address(
            lines=("14 Larkspur Close",),
            town="Maidenhead",
            postcode="SL6 9ZZ",
            local_authority=_W_AND_M,
        ),
        looked_after=LookedAfter(
            responsible_authority=_SLOUGH,
            placed_in=_W_AND_M,
            placement_type=PlacementType.RESIDENTIAL,
        ),
    )


def _meta(agency: str, system: str, ref: str, basis: LawfulBasis, seq: int) -> EventMetadata:
    return EventMetadata(
        event_id=UUID(int=0x5AFE_0000_0000_0000_0000_0000_0000_0000 + seq),
        occurred_at=_WHEN,
        recorded_at=_WHEN,
        source=SourceRef(agency=agency, system=system, reference=ref),
        correlation_id=_EPISODE,
        lawful_basis=basis,
    )


def _police(seq: int, body: EventBody) -> Event:
    meta = _meta("tvp-police", "niche-rms", f"OCC-{seq:06d}", LawfulBasis.CDA_1998_S115, seq)
    return Event(metadata=meta, subject=_child(), body=body)


def _missing_reported() -> Event:
    return _police(
        1,
        MissingReported(
            episode_id=_EPISODE,
            risk_grade=RiskGrade.HIGH,
            reported_at=_WHEN,
            last_seen_at=_WHEN,
            missing_from=_W_AND_M,
            last_seen=Place(
                description="Maidenhead railway station",
                local_authority=_W_AND_M,
                latitude=51.5187,
                longitude=-0.7226,
            ),
            circumstances="Left the residential home after an argument; phone switched off.",
            philomena_protocol=True,
        ),
    )


def _missing_updated() -> Event:
    return _police(
        2,
        MissingUpdated(
            episode_id=_EPISODE,
            risk_grade=RiskGrade.HIGH,
            sighting=Place(description="Slough bus station", local_authority=_SLOUGH),
            note="Seen getting into a silver hatchback.",
        ),
    )


def _missing_found() -> Event:
    return _police(
        3,
        MissingFound(
            episode_id=_EPISODE,
            found_at=_WHEN,
            found_by=FoundBy.POLICE,
            returned_at=_WHEN,
            found_place=Place(description="Takeaway on the High Street", local_authority=_SLOUGH),
        ),
    )


def _return_interview() -> Event:
    meta = _meta("wam-childrens-services", "paris", "RHI-5521", LawfulBasis.CA_1989_S17, 4)
    return Event(
        metadata=meta,
        subject=_child(),
        body=ReturnHomeInterview(
            episode_id=_EPISODE,
            offered_at=_WHEN,
            completed_at=_WHEN,
            conducted_by="wam-childrens-services",
            cse_concerns_disclosed=True,
        ),
    )


def _cse_screening() -> Event:
    meta = _meta("wam-childrens-services", "paris", "CSE-0091", LawfulBasis.CA_1989_S47, 5)
    return Event(
        metadata=meta,
        subject=_child(),
        body=CseScreening(
            level=CseLevel.LEVEL_3,
            screened_at=_WHEN,
            screened_by="wam-childrens-services",
            indicators=(
                CseIndicator.MISSING_EPISODES,
                CseIndicator.OLDER_ASSOCIATES,
                CseIndicator.VEHICLES,
            ),
        ),
    )


def _attendance() -> Event:
    meta = _meta("fhft-hospital", "ed-pas", "V-20261120-0042", LawfulBasis.CA_2004_S11, 6)
    return Event(
        metadata=meta,
        subject=_child(),
        body=UnscheduledCareAttendance(
            setting=AttendanceSetting.EMERGENCY_DEPARTMENT,
            site="RDU01",
            arrived_at=_WHEN,
            attendance_ref="V-20261120-0042",
            flags=(SafeguardingFlag.LOOKED_AFTER, SafeguardingFlag.CSE_CONCERN),
        ),
    )


def _case_status() -> Event:
    meta = _meta("wam-childrens-services", "paris", "P-100234", LawfulBasis.CA_1989_S17, 7)
    return Event(
        metadata=meta,
        subject=_child(),
        body=CaseStatus(
            as_of=_WHEN,
            child_protection_plan=True,
            child_protection_plan_since=date(2026, 6, 1),
            cse_tracker=CseTrackerEntry(level=CseLevel.LEVEL_3, identified_on=date(2026, 9, 14)),
        ),
    )


def _intelligence() -> Event:
    return _police(
        8,
        Intelligence(
            area=_SLOUGH,
            locations=(
                IntelligenceLocation(
                    kind=LocationKind.HOTEL,
                    description="Budget hotel by the A4",
                    local_authority=_SLOUGH,
                ),
            ),
            vehicles=(Vehicle(registration="AB12 CDE", make="Hatchback", colour="silver"),),
        ),
    )


_EXAMPLES: dict[EventType, Callable[[], Event]] = {
    EventType.MISSING_REPORTED: _missing_reported,
    EventType.MISSING_UPDATED: _missing_updated,
    EventType.MISSING_FOUND: _missing_found,
    EventType.RETURN_INTERVIEW: _return_interview,
    EventType.CSE_SCREENING: _cse_screening,
    EventType.ATTENDANCE: _attendance,
    EventType.CASE_STATUS: _case_status,
    EventType.INTELLIGENCE: _intelligence,
}


def example_types() -> list[EventType]:
    """Every body type that has an example (all of them)."""
    return list(_EXAMPLES)


def example_event(event_type: EventType | str) -> Event:
    """A valid, synthetic example event of the given body type."""
    return _EXAMPLES[EventType(event_type)]()
