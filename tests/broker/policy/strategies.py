"""Hypothesis strategies: valid canonical events and random (often wrong) agreements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

from broker.policy import (
    Agreement,
    BoroughCondition,
    BoroughRole,
    Conditions,
    Partnership,
    Party,
    PartyKind,
    Recipient,
    Retention,
    Rule,
    Selector,
    field_catalogue,
)
from schemas import (
    Address,
    Associate,
    AttendanceSetting,
    CaseStatus,
    Child,
    CseIndicator,
    CseLevel,
    CseScreening,
    CseTrackerEntry,
    Event,
    EventMetadata,
    EventType,
    FoundBy,
    Intelligence,
    IntelligenceLocation,
    LawfulBasis,
    LocationKind,
    LookedAfter,
    MissingFound,
    MissingReported,
    MissingUpdated,
    OnlineContact,
    Place,
    PlacementType,
    RemovalReason,
    ReturnHomeInterview,
    RiskGrade,
    SafeguardingFlag,
    Sex,
    SourceRef,
    UnscheduledCareAttendance,
    Vehicle,
    make_test_nhs_number,
)

BOROUGHS = ["E06000040", "E06000039", "E06000036", "E06000041", "E06000038", "E06000037"]
MASH = "wam-mash"
#: Party ids random agreements draw from; ``ghost-agency`` is never made a party.
PARTY_IDS = [
    "wam-mash",
    "wam-childrens-services",
    "tvp-police",
    "fhft-hospital",
    "bob-icb",
    "tv-probation",
    "slough-panel",
    "bracknell-panel",
    "slough-broker",
    "bracknell-broker",
    "thames-youth-trust",
]
GHOST = "ghost-agency"
SOURCES = [*PARTY_IDS, GHOST]

_words = st.sampled_from(["Alder", "Birch", "Cedar", "Damson", "Elm", "Fern", "Hazel"])
_text = st.sampled_from(["Seen near the station", "Takeaway on the parade", "Park by the river"])
_borough = st.sampled_from(BOROUGHS)
_maybe_borough = st.none() | _borough
_times = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_maybe_time = st.none() | _times
_nhs = st.integers(min_value=0, max_value=999_999).map(make_test_nhs_number)


def _sample_tuple(values: Sequence[Any], max_size: int = 3) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(st.sampled_from(values), max_size=max_size, unique=True).map(tuple)


places = st.builds(Place, description=_text, local_authority=_maybe_borough)
addresses = st.builds(
    Address,
    lines=st.just(("1 Test Row",)),
    town=st.just("Maidenhead"),
    postcode=st.none() | st.just("SL6 9ZZ"),
    local_authority=_maybe_borough,
)
looked_after = st.builds(
    LookedAfter,
    responsible_authority=_borough,
    placed_in=_maybe_borough,
    placement_type=st.none() | st.sampled_from(PlacementType),
)
children = st.builds(
    Child,
    given_name=st.none() | _words,
    family_name=st.none() | _words,
    date_of_birth=st.none() | st.dates(min_value=date(2009, 1, 1), max_value=date(2024, 1, 1)),
    sex=st.none() | st.sampled_from(Sex),
    nhs_number=_nhs,
    paris_id=st.none() | st.just("P-100234"),
    police_person_ref=st.none() | st.just("TVP/P/77812"),
    home_address=st.none() | addresses,
    looked_after=st.none() | looked_after,
)

_episode = st.sampled_from(["TVP-MP-2026-000123", "TVP-MP-2026-000777"])

bodies = st.one_of(
    st.builds(
        MissingReported,
        episode_id=_episode,
        risk_grade=st.sampled_from(RiskGrade),
        reported_at=_times,
        last_seen_at=_maybe_time,
        last_seen=st.none() | places,
        missing_from=_maybe_borough,
        circumstances=st.none() | _text,
        philomena_protocol=st.booleans(),
    ),
    st.builds(
        MissingUpdated,
        episode_id=_episode,
        risk_grade=st.none() | st.sampled_from(RiskGrade),
        sighting=st.none() | places,
        note=st.none() | _text,
    ),
    st.builds(
        MissingFound,
        episode_id=_episode,
        found_at=_times,
        found_place=st.none() | places,
        found_by=st.none() | st.sampled_from(FoundBy),
        returned_at=_maybe_time,
    ),
    st.builds(
        ReturnHomeInterview,
        episode_id=_episode,
        offered_at=_times,
        completed_at=_maybe_time,
        declined=st.just(False),
        conducted_by=st.none() | st.sampled_from(PARTY_IDS),
        cse_concerns_disclosed=st.booleans(),
        summary=st.none() | _text,
    ),
    st.builds(
        CseScreening,
        level=st.sampled_from(CseLevel),
        screened_at=_times,
        screened_by=st.sampled_from(PARTY_IDS),
        indicators=_sample_tuple(list(CseIndicator)),
    ),
    st.builds(
        UnscheduledCareAttendance,
        setting=st.sampled_from(AttendanceSetting),
        site=st.just("RDU01"),
        arrived_at=_times,
        departed_at=st.none(),
        attendance_ref=st.none() | st.just("V-1"),
        flags=_sample_tuple(list(SafeguardingFlag)),
        note=st.none() | _text,
    ),
    st.builds(
        CaseStatus,
        as_of=_times,
        child_protection_plan=st.booleans(),
        child_in_need=st.booleans(),
        cse_tracker=st.none()
        | st.builds(
            CseTrackerEntry,
            level=st.sampled_from(CseLevel),
            identified_on=st.just(date(2026, 1, 5)),
            removed_on=st.none(),
            removal_reason=st.none(),
        )
        | st.just(
            CseTrackerEntry(
                level=CseLevel.LEVEL_3,
                identified_on=date(2026, 1, 5),
                removed_on=date(2026, 3, 1),
                removal_reason=RemovalReason.SUCCESSFUL_INTERVENTION,
            )
        ),
    ),
    st.builds(
        Intelligence,
        area=_maybe_borough,
        locations=st.lists(
            st.builds(
                IntelligenceLocation,
                kind=st.sampled_from(LocationKind),
                description=_text,
                local_authority=_maybe_borough,
                postcode=st.none() | st.just("SL1 1AA"),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
        vehicles=st.lists(
            st.builds(
                Vehicle,
                registration=st.none() | st.just("AB12 CDE"),
                make=st.none() | st.just("Hatchback"),
                colour=st.none() | st.just("silver"),
            ),
            max_size=2,
        ).map(tuple),
        associates=st.lists(
            st.builds(
                Associate,
                role=st.just("adult_associate"),
                description=_text,
                police_person_ref=st.none(),
            ),
            max_size=2,
        ).map(tuple),
        online_contacts=st.lists(
            st.builds(
                OnlineContact, platform=st.just("chat-app"), handle=st.none() | st.just("handle1")
            ),
            max_size=1,
        ).map(tuple),
        note=st.none() | _text,
    ),
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    """A valid canonical event of any type, from any source (sometimes not a party)."""
    body = draw(bodies)
    subject: Child | None = draw(children)
    if isinstance(body, Intelligence):
        subject = draw(st.none() | st.just(subject))
    metadata = EventMetadata(
        event_id=UUID(int=draw(st.integers(min_value=0, max_value=2**64))),
        occurred_at=draw(_times),
        recorded_at=draw(_times),
        source=SourceRef(agency=draw(st.sampled_from(SOURCES)), system="test", reference="R-1"),
        correlation_id=draw(st.none() | _episode),
        lawful_basis=draw(st.sampled_from(LawfulBasis)),
    )
    return Event(metadata=metadata, subject=subject, body=body)


# ------------------------------------------------------------------------------ agreements

_dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31))
_early_dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 1, 1))
_late_dates = st.dates(min_value=date(2029, 2, 1), max_value=date(2030, 1, 1))
_all_paths = sorted({p for paths in field_catalogue().by_type.values() for p in paths})
_field_paths = st.one_of(
    st.sampled_from(_all_paths),
    st.sampled_from(
        [
            "metadata.*",
            "subject.*",
            "body.*",
            "subject.home_address.*",
            "body.locations.*",
            "body.last_seen.*",
            "body.cse_tracker.*",
        ]
    ),
    st.sampled_from(["body.nonsense", "subject.shoe_size", "body.level.*"]),  # not in schema
)


def _one_in(
    n: int, rare: st.SearchStrategy[Any], otherwise: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[Any]:
    """``rare`` about one time in ``n``, else ``otherwise`` (None by default).

    Drawn from a uniform choice: hypothesis favours small integers, which would make the
    rare branch the common one.
    """
    other = st.none() if otherwise is None else otherwise
    return st.sampled_from(range(n)).flatmap(lambda i: rare if i == 0 else other)


def _maybe_list(values: Sequence[Any]) -> st.SearchStrategy[tuple[Any, ...] | None]:
    # Usually no condition, so that rules match often enough to exercise sharing.
    some = st.lists(st.sampled_from(values), max_size=4, unique=True).map(tuple)
    return _one_in(8, some)


_linked_to = st.builds(
    BoroughCondition,
    boroughs=st.lists(_borough, max_size=3, unique=True).map(tuple),
    via=st.lists(st.sampled_from(BoroughRole), min_size=1, max_size=3, unique=True).map(tuple),
)

conditions = st.builds(
    Conditions,
    event_types=_maybe_list(list(EventType)),
    risk_grades=_maybe_list(list(RiskGrade)),
    cse_levels=_maybe_list(list(CseLevel)),
    safeguarding_flags=_maybe_list(list(SafeguardingFlag)),
    from_parties=_maybe_list(SOURCES),
    linked_to=_one_in(6, _linked_to),
)

_named = st.builds(
    Recipient,
    party=st.sampled_from([*PARTY_IDS, GHOST]),
    fields=st.lists(_field_paths, max_size=6).map(tuple),
    field_sets=st.lists(st.sampled_from(["identity", "no-such-set"]), max_size=1).map(tuple),
)
_selected = st.builds(
    Recipient,
    select=st.builds(
        Selector,
        kinds=st.lists(st.sampled_from(PartyKind), min_size=1, max_size=3, unique=True).map(tuple),
        borough_of=st.lists(st.sampled_from(BoroughRole), min_size=1, max_size=3, unique=True).map(
            tuple
        ),
    ),
    fields=st.lists(_field_paths, max_size=6).map(tuple),
)

# Named parties three times in four: selectors often find nobody for random boroughs.
recipients = _one_in(4, _selected, otherwise=_named)


@st.composite
def rules(draw: st.DrawFn, rule_id: str) -> Rule:
    """A rule, often odd: expired, never matching, naming strangers or invalid fields."""
    start = draw(_one_in(6, _dates))
    end = draw(_one_in(6, _dates))
    # s.115 is drawn more often than the other bases: its refusals are the subtle part.
    weighted_basis = st.sampled_from(LawfulBasis) | st.just(LawfulBasis.CDA_1998_S115)
    return Rule(
        id=rule_id,
        description="A rule made up for a property test.",
        purpose="Testing.",
        lawful_basis=draw(weighted_basis),
        retention=Retention(
            amount=draw(st.integers(1, 24)), unit=draw(st.sampled_from(["day", "month", "year"]))
        ),
        effective_from=start,
        expires_on=end,
        send_to_source=draw(st.booleans()),
        when=draw(conditions),
        share_with=tuple(draw(st.lists(recipients, min_size=1, max_size=4))),
    )


@st.composite
def parties(draw: st.DrawFn, party_id: str) -> Party:
    """A party with a random kind, s.115 status and borough."""
    return Party(
        id=party_id,
        name=f"Party {party_id}",
        kind=draw(st.sampled_from(PartyKind)),
        relevant_authority=draw(st.booleans()),
        borough=draw(_maybe_borough),
    )


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    """A random agreement: most of the party pool, mostly in force, up to six rules."""
    left_out = draw(st.sets(st.sampled_from(PARTY_IDS), max_size=3))
    ids = [i for i in PARTY_IDS if i not in left_out]
    if draw(st.integers(0, 3)) and MASH not in ids:
        ids.append(MASH)
    # In force over every instant drawn about 3 times in 4; otherwise a random period.
    if draw(st.integers(0, 3)):
        start, end = draw(_early_dates), draw(st.none() | _late_dates)
    else:
        start, end = draw(_dates), draw(st.none() | _dates)
    n_rules = 6 - draw(st.integers(0, 6))  # shrinks towards more rules, not none
    return Agreement(
        version="1",
        effective_from=start,
        expires_on=end,
        partnership=Partnership(name="Test partnership", borough="E06000040"),
        field_sets={"identity": ("subject.nhs_number", "subject.family_name", "body.*")},
        parties=tuple(draw(parties(i)) for i in ids),
        rules=tuple(draw(rules(f"rule-{n}")) for n in range(n_rules)),
    )


instants = st.datetimes(
    min_value=datetime(2024, 12, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2029, 2, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)

__all__ = ["agreements", "events", "instants", "rules"]
