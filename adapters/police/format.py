"""The police records format: pydantic models of the JSON a force sends, and its JSON Schema.

A force's records system sends one JSON object per record. ``record_type`` says which of
four shapes it has (``missing_report``, ``missing_update``, ``missing_found``,
``exploitation_intelligence``). Unknown fields are refused. Times carry an offset or are
Europe/London wall time; either way they are held here in UTC once validated. Checks that
need "now" (nothing in the future, a plausible date of birth) read it from the validation
context key ``now``; without it they are skipped, so the models also validate stored records.
docs/partners/police.md describes every field.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
)

from adapters.base import check_date_of_birth, check_not_future, london_to_utc, strip_control
from adapters.police.labels import (
    AssociateRoleLabel,
    CseIndicatorLabel,
    FoundByLabel,
    LocationKindLabel,
    PlacementLabel,
    RiskLabel,
    SexLabel,
)
from schemas.common import NhsNumber, OnsCode

__all__ = [
    "FORMAT_VERSION",
    "RECORD_ADAPTER",
    "RECORD_TYPES",
    "SCHEMA_ID",
    "Associate",
    "Coordinates",
    "CseDetails",
    "ExploitationIntelligenceRecord",
    "Found",
    "IntelligenceDetails",
    "IntelligenceLocation",
    "LastSeen",
    "LookedAfterDetails",
    "MissingFoundRecord",
    "MissingRecord",
    "MissingReportRecord",
    "MissingUpdateRecord",
    "OnlineContact",
    "Person",
    "Place",
    "PoliceRecord",
    "PostalAddress",
    "Report",
    "Update",
    "Vehicle",
    "record_json_schema",
]

#: The version of the format these models describe; a record states it in ``format_version``.
FORMAT_VERSION = 1

RECORD_TYPES = ("missing_report", "missing_update", "missing_found", "exploitation_intelligence")

SCHEMA_ID = "https://schemas.mash-broker.example/partners/police-record.schema.json"

#: Earlier instants are not plausible in a live safeguarding feed; they are typing errors.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

_TIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$")
_WHITESPACE = re.compile(r"\s+")


def _now(info: ValidationInfo) -> datetime | None:
    context = info.context
    if isinstance(context, dict):
        now = context.get("now")
        if isinstance(now, datetime):
            return now
    return None


# --- scalar types -------------------------------------------------------------------------


def _short_text(value: str) -> str:
    cleaned = _WHITESPACE.sub(" ", strip_control(value)).strip()
    if not cleaned:
        raise ValueError("must not be empty")
    return cleaned


def _long_text(value: str) -> str:
    cleaned = strip_control(value).strip()
    if not cleaned:
        raise ValueError("must not be empty")
    return cleaned


#: One line of text: control characters removed, runs of white space made one space.
ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_short_text)]

#: Free text: control characters removed, line breaks kept. Up to 3,600 characters so that
#: ungraded CSE indicators appended to an intelligence note stay within the canonical 4,000.
LongText = Annotated[str, StringConstraints(max_length=3600), AfterValidator(_long_text)]

Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/_.:-]{3,64}$")]
RecordId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
SystemName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


def _upper(value: Any) -> Any:
    # Before the pattern: pydantic checks a pattern ahead of its own ``to_upper``.
    return value.strip().upper() if isinstance(value, str) else value


ForceCode = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z0-9]{2,5}$")]
PolicePersonRef = Annotated[
    str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z0-9/-]{3,30}$")
]
ParisId = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z0-9-]{3,20}$")]


def _compact_postcode(value: Any) -> Any:
    # Forces store postcodes with or without the space; canonical form has exactly one.
    if isinstance(value, str):
        compact = "".join(value.split()).upper()
        return f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact
    return value


Postcode = Annotated[
    str,
    BeforeValidator(_compact_postcode),
    StringConstraints(pattern=r"^[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}$"),
]


def _compact_registration(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.upper().split())
    return value


Registration = Annotated[
    str, BeforeValidator(_compact_registration), StringConstraints(pattern=r"^[A-Z0-9 ]{2,10}$")
]


def _time_text(value: Any) -> Any:
    # Parsed here (not by pydantic) so the accepted forms are exactly the documented pattern.
    if not isinstance(value, str):
        return value  # the strict datetime check then refuses it with its own message
    if _TIME_TEXT.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # e.g. a 31st of February: same answer as a malformed string
    raise ValueError(
        "must be an ISO 8601 date and time such as 2026-11-20T21:30:00, "
        "with an offset (Z, +01:00) or as Europe/London local time"
    )


def _partner_instant(value: datetime, info: ValidationInfo) -> datetime:
    try:
        instant = london_to_utc(value)
    except OverflowError:
        raise ValueError("is out of range") from None
    if instant < EARLIEST:
        raise ValueError("is implausibly early (before 2000)")
    now = _now(info)
    if now is not None and (reason := check_not_future(instant, now)):
        raise ValueError(reason)
    return instant


#: An instant with an offset, or naive Europe/London wall time; held in UTC once validated.
PartnerTime = Annotated[
    datetime,
    BeforeValidator(_time_text),
    AfterValidator(_partner_instant),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _TIME_TEXT.pattern,
            "description": "ISO 8601 date and time. With an offset (Z or ±hh:mm) it is that "
            "instant; without one it is Europe/London wall time (GMT or BST as in force).",
            "examples": ["2026-11-20T21:30:00Z", "2026-06-02T18:05:00+01:00", "2026-06-02T18:05"],
        }
    ),
]


def _plausible_birth(value: date, info: ValidationInfo) -> date:
    now = _now(info)
    if now is not None and (reason := check_date_of_birth(value, now)):
        raise ValueError(reason)
    return value


BirthDate = Annotated[date, AfterValidator(_plausible_birth)]


# --- parts --------------------------------------------------------------------------------


class _Native(BaseModel):
    """Base of the native models: unknown fields refused, JSON types taken strictly."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, str_strip_whitespace=True)


class PostalAddress(_Native):
    """Where the person lives: for a looked-after child, the placement address."""

    lines: list[ShortText] = Field(default_factory=list, max_length=5)
    town: ShortText | None = None
    postcode: Postcode | None = None
    local_authority: OnsCode | None = Field(
        default=None, description="ONS code of the local authority the address lies in."
    )


class LookedAfterDetails(_Native):
    """Present only when the person is a looked-after child."""

    placing_authority: OnsCode = Field(
        description="ONS code of the authority responsible for the child (the home authority)."
    )
    placed_in: OnsCode | None = Field(
        default=None,
        description="ONS code of the authority the child is placed in; when absent, the "
        "local authority of the person's address.",
    )
    placement_type: PlacementLabel | None = None


class Person(_Native):
    """The child the record is about. Needs an identifier, or a surname with date of birth."""

    forenames: ShortText | None = None
    surname: ShortText | None = None
    date_of_birth: BirthDate | None = None
    sex: SexLabel | None = None
    address: PostalAddress | None = None
    nhs_number: NhsNumber | None = Field(
        default=None, description="Ten digits (spaces allowed) with a valid check digit."
    )
    local_authority_ref: ParisId | None = Field(
        default=None, description="The council's case-system (Paris) person id, if known."
    )
    police_person_ref: PolicePersonRef | None = Field(
        default=None, description="The force's person (nominal) reference."
    )
    looked_after: LookedAfterDetails | None = None


class Coordinates(_Native):
    """WGS84 latitude and longitude in decimal degrees."""

    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)


class Place(_Native):
    """A place described in words, with its local authority and coordinates when known."""

    description: ShortText
    local_authority: OnsCode | None = None
    coordinates: Coordinates | None = None


class LastSeen(Place):
    """Where, and when, the person was last seen."""

    time: PartnerTime | None = None


class Report(_Native):
    """The initial missing-person report."""

    reported_at: PartnerTime
    risk_grade: RiskLabel
    last_seen: LastSeen | None = None
    missing_from: OnsCode | None = Field(
        default=None,
        description="ONS code of the authority the person went missing from; when absent, "
        "the local authority of the person's address.",
    )
    circumstances: LongText | None = None
    philomena_protocol: bool = Field(
        default=False, description="True when carers hold a Philomena protocol form."
    )


class Update(_Native):
    """A change during the episode: at least one of a new risk grade, a sighting or a note."""

    at: PartnerTime = Field(description="When the update was made.")
    risk_grade: RiskLabel | None = None
    sighting: Place | None = None
    note: LongText | None = None


class Found(_Native):
    """The person was found or came back."""

    found_at: PartnerTime
    place: Place | None = Field(default=None, description="Where the person was found.")
    found_by: FoundByLabel | None = None
    returned_at: PartnerTime | None = Field(
        default=None, description="When the person was back home or at the placement."
    )


class CseDetails(_Native):
    """CSE indicators and, when the force grades it, the CSE risk level (3 most serious)."""

    level: Literal[1, 2, 3] | None = Field(
        default=None, description="The force's CSE risk grading; absent when not graded."
    )
    screened_at: PartnerTime | None = None
    indicators: list[CseIndicatorLabel] = Field(default_factory=list, max_length=20)


class IntelligenceLocation(_Native):
    """A location of concern."""

    kind: LocationKindLabel
    description: ShortText
    local_authority: OnsCode | None = None
    postcode: Postcode | None = None


class Vehicle(_Native):
    """A vehicle of concern; at least one of its fields."""

    registration: Registration | None = None
    make: ShortText | None = None
    colour: ShortText | None = None


class Associate(_Native):
    """A person associated with the child, described; identified only by a police reference."""

    role: AssociateRoleLabel
    description: ShortText
    police_person_ref: PolicePersonRef | None = None


class OnlineContact(_Native):
    """An online platform, and the handle used, to contact the child."""

    platform: ShortText
    handle: ShortText | None = None


class IntelligenceDetails(_Native):
    """Exploitation intelligence: at least one location, vehicle, associate or online contact."""

    area: OnsCode | None = Field(
        default=None, description="ONS code of the authority the intelligence is about."
    )
    locations: list[IntelligenceLocation] = Field(default_factory=list, max_length=50)
    vehicles: list[Vehicle] = Field(default_factory=list, max_length=50)
    associates: list[Associate] = Field(default_factory=list, max_length=50)
    online_contacts: list[OnlineContact] = Field(default_factory=list, max_length=50)
    note: LongText | None = None


# --- records ------------------------------------------------------------------------------


_OCCURRENCE = "The force's occurrence (incident) reference."
_EPISODE = (
    "The missing episode: the report, its updates and the found record all carry the same "
    "reference, so their events correlate."
)


class _Record(_Native):
    """The header every record carries; each record type narrows or adds to it."""

    format_version: Literal[1] = Field(description="The format version; 1.")
    record_type: str
    record_id: RecordId = Field(
        description="The record's unique id in the force system; a resent record repeats it."
    )
    force_code: ForceCode = Field(description="The force's code, e.g. 43 for Thames Valley.")
    source_system: SystemName | None = Field(
        default=None, description="The sending records system, e.g. niche-rms."
    )
    recorded_at: PartnerTime | None = Field(
        default=None, description="When the force system recorded the record."
    )
    occurrence_ref: Reference | None = Field(default=None, description=_OCCURRENCE)
    episode_ref: Reference | None = Field(
        default=None,
        description="The missing episode the intelligence came from, if any. " + _EPISODE,
    )


class MissingReportRecord(_Record):
    """A person reported missing: the start of an episode."""

    record_type: Literal["missing_report"]
    occurrence_ref: Reference = Field(description=_OCCURRENCE)
    episode_ref: Reference = Field(description=_EPISODE)
    missing_person: Person
    report: Report
    cse: CseDetails | None = None
    intelligence: IntelligenceDetails | None = None


class MissingUpdateRecord(_Record):
    """A change during an open episode."""

    record_type: Literal["missing_update"]
    occurrence_ref: Reference = Field(description=_OCCURRENCE)
    episode_ref: Reference = Field(description=_EPISODE)
    missing_person: Person
    update: Update
    cse: CseDetails | None = None
    intelligence: IntelligenceDetails | None = None


class MissingFoundRecord(_Record):
    """The end of an episode: found or returned."""

    record_type: Literal["missing_found"]
    occurrence_ref: Reference = Field(description=_OCCURRENCE)
    episode_ref: Reference = Field(description=_EPISODE)
    missing_person: Person
    found: Found
    cse: CseDetails | None = None
    intelligence: IntelligenceDetails | None = None


class ExploitationIntelligenceRecord(_Record):
    """Exploitation intelligence, about a child or about an area."""

    record_type: Literal["exploitation_intelligence"]
    subject: Person | None = Field(default=None, description="The child, when about one.")
    intelligence: IntelligenceDetails
    cse: CseDetails | None = None


MissingRecord = MissingReportRecord | MissingUpdateRecord | MissingFoundRecord


def _record_type(value: Any) -> str | None:
    if isinstance(value, dict):
        tag = value.get("record_type")
        if tag in RECORD_TYPES:
            return str(tag)
    return None


#: Any police record; ``record_type`` chooses the shape.
PoliceRecord = Annotated[
    Annotated[MissingReportRecord, Tag("missing_report")]
    | Annotated[MissingUpdateRecord, Tag("missing_update")]
    | Annotated[MissingFoundRecord, Tag("missing_found")]
    | Annotated[ExploitationIntelligenceRecord, Tag("exploitation_intelligence")],
    Discriminator(
        _record_type,
        custom_error_type="record_type",
        custom_error_message="must be one of " + ", ".join(RECORD_TYPES),
    ),
]

#: Validates raw JSON into a record: ``RECORD_ADAPTER.validate_json(raw, context={"now": t})``.
RECORD_ADAPTER: TypeAdapter[PoliceRecord] = TypeAdapter(PoliceRecord)


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a police record, as published to forces."""
    schema = RECORD_ADAPTER.json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Police missing-person and exploitation record",
        "description": "One record a force's records system sends to mash-broker "
        f"(format version {FORMAT_VERSION}). See docs/partners/police.md.",
        **schema,
    }
