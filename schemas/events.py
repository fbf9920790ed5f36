"""Canonical events: metadata, the child, and one typed body per kind of event."""

from __future__ import annotations

from datetime import date
from enum import IntEnum, StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, model_validator

from schemas.common import (
    CanonicalModel,
    OnsCode,
    PartyId,
    ShortText,
    UtcDatetime,
)
from schemas.person import Child

__all__ = [
    "Associate",
    "AttendanceSetting",
    "CaseStatus",
    "CseIndicator",
    "CseLevel",
    "CseScreening",
    "CseTrackerEntry",
    "Event",
    "EventBody",
    "EventMetadata",
    "EventType",
    "FoundBy",
    "Intelligence",
    "IntelligenceLocation",
    "LawfulBasis",
    "LocationKind",
    "MissingFound",
    "MissingReported",
    "MissingUpdated",
    "OnlineContact",
    "Place",
    "RemovalReason",
    "ReturnHomeInterview",
    "RiskGrade",
    "SafeguardingFlag",
    "SourceRef",
    "UnscheduledCareAttendance",
    "Vehicle",
]

LongText = Annotated[
    str, Field(min_length=1, max_length=4000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
]
EpisodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9/_.:-]{3,64}$")]


class EventType(StrEnum):
    """The kinds of event the broker carries; the value is the body's ``type``."""

    MISSING_REPORTED = "missing.reported"
    MISSING_UPDATED = "missing.updated"
    MISSING_FOUND = "missing.found"
    RETURN_INTERVIEW = "rhi.completed"
    CSE_SCREENING = "cse.screening"
    ATTENDANCE = "care.attendance"
    CASE_STATUS = "case.status"
    INTELLIGENCE = "intelligence"


class LawfulBasis(StrEnum):
    """Lawful bases for sharing that the agreement and the source can name."""

    CDA_1998_S115 = "cda-1998-s115"
    CA_1989_S17 = "ca-1989-s17"
    CA_1989_S47 = "ca-1989-s47"
    CA_2004_S11 = "ca-2004-s11"
    DPA_2018_SCH8 = "dpa-2018-sch8"
    DPA_2018_SCH1_PARA18 = "dpa-2018-sch1-para18"


class RiskGrade(StrEnum):
    """College of Policing missing-person risk continuum."""

    NO_APPARENT_RISK = "no_apparent_risk"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CseLevel(IntEnum):
    """CSE screening risk level; 3 is the most serious."""

    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3


class SourceRef(CanonicalModel):
    """Where an event came from: the agency (a party id), its system and its own reference."""

    agency: PartyId
    system: ShortText
    reference: ShortText


class EventMetadata(CanonicalModel):
    """What every event carries besides its subject and body."""

    schema_version: Literal[1] = 1
    event_id: UUID
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    source: SourceRef
    correlation_id: EpisodeId | None = Field(
        default=None, description="Links related events, e.g. every event of one missing episode."
    )
    classification: Literal["OFFICIAL-SENSITIVE"] = "OFFICIAL-SENSITIVE"
    lawful_basis: LawfulBasis = Field(description="The basis on which the source shares it.")


class Place(CanonicalModel):
    """A place a child was last seen or found; coordinates when known."""

    description: ShortText
    local_authority: OnsCode | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class MissingReported(CanonicalModel):
    """A child reported missing to the police."""

    type: Literal["missing.reported"] = "missing.reported"
    episode_id: EpisodeId
    risk_grade: RiskGrade
    reported_at: UtcDatetime
    last_seen_at: UtcDatetime | None = None
    last_seen: Place | None = None
    missing_from: OnsCode | None = Field(
        default=None, description="The authority the child went missing from."
    )
    circumstances: LongText | None = None
    philomena_protocol: bool = Field(
        default=False, description="Reported with a Philomena protocol form held by carers."
    )


class MissingUpdated(CanonicalModel):
    """A change during a missing episode: a new risk grade, a sighting, a note."""

    type: Literal["missing.updated"] = "missing.updated"
    episode_id: EpisodeId
    risk_grade: RiskGrade | None = None
    sighting: Place | None = None
    note: LongText | None = None


class FoundBy(StrEnum):
    """Who found the child, or how the child came back."""

    POLICE = "police"
    CARER = "carer"
    PARENT = "parent"
    SELF_RETURNED = "self_returned"
    OTHER_AGENCY = "other_agency"
    MEMBER_OF_PUBLIC = "member_of_public"


class MissingFound(CanonicalModel):
    """The child was found or came back; the return starts the return-interview clock."""

    type: Literal["missing.found"] = "missing.found"
    episode_id: EpisodeId
    found_at: UtcDatetime
    found_place: Place | None = None
    found_by: FoundBy | None = None
    returned_at: UtcDatetime | None = Field(
        default=None, description="When the child was back home or at the placement."
    )


class ReturnHomeInterview(CanonicalModel):
    """A return home interview offered after a missing episode."""

    type: Literal["rhi.completed"] = "rhi.completed"
    episode_id: EpisodeId
    offered_at: UtcDatetime
    completed_at: UtcDatetime | None = None
    declined: bool = False
    conducted_by: PartyId | None = None
    cse_concerns_disclosed: bool = False
    summary: LongText | None = None

    @model_validator(mode="after")
    def _completed_or_declined(self) -> ReturnHomeInterview:
        if self.declined and self.completed_at is not None:
            raise ValueError("an interview cannot be both declined and completed")
        return self


class CseIndicator(StrEnum):
    """Indicators a CSE screening tool records."""

    MISSING_EPISODES = "missing_episodes"
    OLDER_ASSOCIATES = "older_associates"
    GIFTS_OR_MONEY = "gifts_or_money"
    SUBSTANCE_MISUSE = "substance_misuse"
    SEXUAL_HEALTH = "sexual_health"
    ONLINE_CONTACT = "online_contact"
    UNEXPLAINED_INJURIES = "unexplained_injuries"
    SCHOOL_ABSENCE = "school_absence"
    VEHICLES = "vehicles"
    HOTELS_OR_PARTIES = "hotels_or_parties"
    CHANGE_IN_BEHAVIOUR = "change_in_behaviour"
    DISCLOSURE = "disclosure"


class CseScreening(CanonicalModel):
    """The result of a CSE screening."""

    type: Literal["cse.screening"] = "cse.screening"
    level: CseLevel
    screened_at: UtcDatetime
    screened_by: PartyId
    indicators: tuple[CseIndicator, ...] = ()


class AttendanceSetting(StrEnum):
    """Unscheduled-care settings whose attendances matter to safeguarding."""

    EMERGENCY_DEPARTMENT = "emergency_department"
    URGENT_TREATMENT_CENTRE = "urgent_treatment_centre"
    SEXUAL_HEALTH = "sexual_health"
    MATERNITY = "maternity"
    OTHER = "other"


class SafeguardingFlag(StrEnum):
    """Flags health systems raise on an attendance."""

    CHILD_PROTECTION_PLAN = "child_protection_plan"
    LOOKED_AFTER = "looked_after"
    SAFEGUARDING_CONCERN = "safeguarding_concern"
    CSE_CONCERN = "cse_concern"
    UNDER_16_PREGNANCY = "under_16_pregnancy"
    SELF_HARM = "self_harm"
    SUBSTANCE_MISUSE = "substance_misuse"
    ASSAULT = "assault"


class UnscheduledCareAttendance(CanonicalModel):
    """An attendance at A&E, a sexual health service or other unscheduled care."""

    type: Literal["care.attendance"] = "care.attendance"
    setting: AttendanceSetting
    site: ShortText = Field(description="The site's ODS code or name.")
    arrived_at: UtcDatetime
    departed_at: UtcDatetime | None = None
    attendance_ref: ShortText | None = Field(default=None, description="The visit number.")
    flags: tuple[SafeguardingFlag, ...] = ()
    note: LongText | None = None

    @model_validator(mode="after")
    def _departure_after_arrival(self) -> UnscheduledCareAttendance:
        if self.departed_at is not None and self.departed_at < self.arrived_at:
            raise ValueError("departed_at is before arrived_at")
        return self


class RemovalReason(StrEnum):
    """Why a child was removed from the CSE tracker."""

    SUCCESSFUL_INTERVENTION = "successful_intervention"
    MOVED_AWAY = "moved_away"
    REACHED_ADULTHOOD = "reached_adulthood"
    NO_LONGER_ASSESSED_AT_RISK = "no_longer_assessed_at_risk"
    OTHER = "other"


class CseTrackerEntry(CanonicalModel):
    """The child's place on the council's CSE tracker."""

    level: CseLevel
    identified_on: date
    removed_on: date | None = None
    removal_reason: RemovalReason | None = None

    @model_validator(mode="after")
    def _removal_consistent(self) -> CseTrackerEntry:
        if (self.removed_on is None) != (self.removal_reason is None):
            raise ValueError("removed_on and removal_reason go together")
        if self.removed_on is not None and self.removed_on < self.identified_on:
            raise ValueError("removed_on is before identified_on")
        return self


class CaseStatus(CanonicalModel):
    """The child's status in the council's case system (Paris)."""

    type: Literal["case.status"] = "case.status"
    as_of: UtcDatetime
    child_protection_plan: bool = False
    child_protection_plan_since: date | None = None
    child_in_need: bool = False
    cse_tracker: CseTrackerEntry | None = None


class LocationKind(StrEnum):
    """Kinds of location CSE intelligence names."""

    HOTEL = "hotel"
    TAKEAWAY = "takeaway"
    PARK = "park"
    ADDRESS = "address"
    SHOP = "shop"
    TRANSPORT_HUB = "transport_hub"
    OTHER = "other"


class IntelligenceLocation(CanonicalModel):
    """A location of concern."""

    kind: LocationKind
    description: ShortText
    local_authority: OnsCode | None = None
    postcode: ShortText | None = None


class Vehicle(CanonicalModel):
    """A vehicle of concern."""

    registration: Annotated[str, Field(pattern=r"^[A-Z0-9 ]{2,10}$")] | None = None
    make: ShortText | None = None
    colour: ShortText | None = None


class Associate(CanonicalModel):
    """A person associated with the child: described, not identified, unless police share it."""

    role: Literal["suspected_offender", "peer", "adult_associate", "unknown"]
    description: ShortText
    police_person_ref: Annotated[str, Field(pattern=r"^[A-Z0-9/-]{3,30}$")] | None = None


class OnlineContact(CanonicalModel):
    """An online platform and handle used to contact the child."""

    platform: ShortText
    handle: ShortText | None = None


class Intelligence(CanonicalModel):
    """Intelligence about locations, vehicles, associates and online contact."""

    type: Literal["intelligence"] = "intelligence"
    area: OnsCode | None = Field(
        default=None, description="The authority the intelligence is about."
    )
    locations: tuple[IntelligenceLocation, ...] = ()
    vehicles: tuple[Vehicle, ...] = ()
    associates: tuple[Associate, ...] = ()
    online_contacts: tuple[OnlineContact, ...] = ()
    note: LongText | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Intelligence:
        if not (self.locations or self.vehicles or self.associates or self.online_contacts):
            raise ValueError(
                "intelligence needs at least one location, vehicle, associate or contact"
            )
        return self


EventBody = Annotated[
    MissingReported
    | MissingUpdated
    | MissingFound
    | ReturnHomeInterview
    | CseScreening
    | UnscheduledCareAttendance
    | CaseStatus
    | Intelligence,
    Field(discriminator="type"),
]


class Event(CanonicalModel):
    """One canonical event: metadata, the child it is about, and a typed body."""

    metadata: EventMetadata
    subject: Child | None = Field(
        default=None, description="The child; optional only for intelligence about an area."
    )
    body: EventBody

    @model_validator(mode="after")
    def _subject_required(self) -> Event:
        if self.subject is None and not isinstance(self.body, Intelligence):
            raise ValueError(f"subject is required for {self.body.type} events")
        return self

    @property
    def event_type(self) -> EventType:
        """The body's type as an enumeration member."""
        return EventType(self.body.type)
