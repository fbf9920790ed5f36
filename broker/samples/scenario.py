"""A synthetic borough scenario: children, missing episodes, attendances and tracker rows.

Every sample partner message is rendered from one ``Scenario``, so the police, health and
Paris samples describe the same invented children. Names and places are invented; NHS
numbers come from the 999 test range. The same seed always gives the same scenario.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from schemas.common import make_test_nhs_number
from schemas.events import (
    AttendanceSetting,
    CseIndicator,
    CseLevel,
    FoundBy,
    LocationKind,
    RemovalReason,
    RiskGrade,
    SafeguardingFlag,
)
from schemas.person import PlacementType, Sex

__all__ = [
    "Attendance",
    "ChildRecord",
    "Episode",
    "IntelItem",
    "Scenario",
    "TrackerRow",
    "make_scenario",
]

WAM = "E06000040"
SLOUGH = "E06000039"
BRACKNELL = "E06000036"
READING = "E06000038"

_GIVEN = (
    "Ellie",
    "Jayden",
    "Maisie",
    "Tyler",
    "Amara",
    "Kieran",
    "Lacey",
    "Rhys",
    "Poppy",
    "Callum",
    "Nia",
    "Frankie",
)
_FAMILY = (
    "Brackwater",
    "Thornlow",
    "Ashdown",
    "Pellington",
    "Greyfield",
    "Marlowe",
    "Fenwick",
    "Oakhurst",
    "Whitcombe",
    "Hollis",
    "Redvers",
    "Lindqvist",
)
_STREETS = (
    "Larkspur Close",
    "Cedar Rise",
    "Mill Lane",
    "Orchard Way",
    "Fernbank Road",
    "Kestrel Drive",
)
_TOWNS = {
    WAM: ("Maidenhead", "SL6"),
    SLOUGH: ("Slough", "SL1"),
    BRACKNELL: ("Bracknell", "RG12"),
    READING: ("Reading", "RG1"),
}
_PLACES = {
    WAM: (
        "Maidenhead railway station",
        "Kidwells Park",
        "Windsor riverside",
        "Maidenhead bus station",
    ),
    SLOUGH: ("Slough bus station", "Takeaway on the High Street", "Salt Hill Park"),
    BRACKNELL: ("Bracknell town centre", "The Lexicon car park"),
    READING: ("Reading station forecourt", "Forbury Gardens"),
}
_COORDS = {
    WAM: (51.5187, -0.7226),
    SLOUGH: (51.5105, -0.5950),
    BRACKNELL: (51.4154, -0.7536),
    READING: (51.4584, -0.9716),
}


@dataclass(frozen=True)
class ChildRecord:
    """One invented child and the identifiers each agency holds."""

    key: str
    given_name: str
    family_name: str
    date_of_birth: date
    sex: Sex
    nhs_number: str
    paris_id: str
    police_person_ref: str
    address_line: str
    town: str
    postcode: str
    home_authority: str
    looked_after_by: str | None = None
    placed_in: str | None = None
    placement_type: PlacementType | None = None


@dataclass(frozen=True)
class Episode:
    """One missing episode: reported, perhaps updated, found, then a return interview."""

    child: str
    episode_id: str
    occurrence_ref: str
    risk_grade: RiskGrade
    reported_at: datetime
    last_seen_at: datetime
    last_seen_place: str
    missing_from: str
    updated_risk: RiskGrade | None
    found_at: datetime
    found_place: str
    found_in: str
    found_by: FoundBy
    rhi_offered_at: datetime
    rhi_completed_at: datetime | None
    cse_indicators: tuple[CseIndicator, ...] = ()
    coordinates: tuple[float, float] | None = None


@dataclass(frozen=True)
class Attendance:
    """An unscheduled-care attendance."""

    child: str
    visit_number: str
    setting: AttendanceSetting
    site: str
    arrived_at: datetime
    departed_at: datetime
    flags: tuple[SafeguardingFlag, ...]


@dataclass(frozen=True)
class TrackerRow:
    """A child's row in the council's CSE tracker and case status."""

    child: str
    level: CseLevel
    identified_on: date
    removed_on: date | None
    removal_reason: RemovalReason | None
    child_protection_plan: bool
    child_protection_plan_since: date | None


@dataclass(frozen=True)
class IntelItem:
    """A piece of CSE intelligence the police hold about a location or vehicle."""

    reference: str
    about_child: str | None
    area: str
    location_kind: LocationKind
    location: str
    vehicle_registration: str | None
    vehicle_colour: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class Scenario:
    """Everything the sample partner messages describe."""

    seed: int
    now: datetime
    children: tuple[ChildRecord, ...]
    episodes: tuple[Episode, ...]
    attendances: tuple[Attendance, ...]
    tracker: tuple[TrackerRow, ...]
    intelligence: tuple[IntelItem, ...] = field(default=())

    def child(self, key: str) -> ChildRecord:
        """The child with the given key."""
        return next(c for c in self.children if c.key == key)


def _child(rng: random.Random, index: int, now: datetime, home: str) -> ChildRecord:
    town, district = _TOWNS[home]
    age_days = rng.randint(12 * 365, 17 * 365)
    return ChildRecord(
        key=f"child-{index + 1}",
        given_name=_GIVEN[index % len(_GIVEN)],
        family_name=_FAMILY[(index * 5 + 3) % len(_FAMILY)],
        date_of_birth=(now - timedelta(days=age_days)).date(),
        sex=Sex.FEMALE if index % 2 == 0 else Sex.MALE,
        nhs_number=make_test_nhs_number(1000 + index * 7),
        paris_id=f"P-{200100 + index * 13}",
        police_person_ref=f"TVP/P/{81000 + index * 17}",
        address_line=f"{rng.randint(1, 99)} {_STREETS[index % len(_STREETS)]}",
        town=town,
        postcode=f"{district} {rng.randint(1, 9)}ZZ",
        home_authority=home,
    )


def make_scenario(seed: int = 1, now: datetime | None = None) -> Scenario:
    """Build the scenario for ``seed``: six children, repeat episodes, a cross-border find.

    * child-1 lives in Windsor and Maidenhead and goes missing three times in 90 days
      (a repeat-missing pattern) and is on the CSE tracker at level 3;
    * child-2 lives in Slough and is found in Windsor and Maidenhead (cross-border);
    * child-3 is looked after by Slough and placed in a residential home here (out of area);
    * child-4 is looked after by Windsor and Maidenhead and placed in Reading;
    * child-5 attends A&E and the sexual health clinic with safeguarding flags;
    * child-6 was on the tracker and was removed after a successful intervention.
    """
    rng = random.Random(seed)
    now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    homes = (WAM, SLOUGH, SLOUGH, WAM, WAM, WAM)
    children = [_child(rng, i, now, home) for i, home in enumerate(homes)]
    children[2] = _replace(
        children[2], looked_after_by=SLOUGH, placed_in=WAM, placement_type=PlacementType.RESIDENTIAL
    )
    children[3] = _replace(
        children[3], looked_after_by=WAM, placed_in=READING, placement_type=PlacementType.FOSTER
    )
    episodes: list[Episode] = []
    plan = (
        ("child-1", WAM, WAM, 80),
        ("child-1", WAM, SLOUGH, 45),
        ("child-1", WAM, WAM, 6),
        ("child-2", SLOUGH, WAM, 3),
        ("child-3", WAM, WAM, 2),
        ("child-4", READING, READING, 10),
    )
    for n, (key, missing_from, found_in, days_ago) in enumerate(plan, start=1):
        episodes.append(
            _episode(
                rng,
                n,
                key=key,
                missing_from=missing_from,
                found_in=found_in,
                last_seen=now - timedelta(days=days_ago),
                now=now,
            )
        )
    attendances = (
        Attendance(
            "child-5",
            f"V{seed:02d}0001",
            AttendanceSetting.EMERGENCY_DEPARTMENT,
            "RDU01",
            now - timedelta(days=4, hours=3),
            now - timedelta(days=4),
            (SafeguardingFlag.SAFEGUARDING_CONCERN, SafeguardingFlag.ASSAULT),
        ),
        Attendance(
            "child-5",
            f"V{seed:02d}0002",
            AttendanceSetting.SEXUAL_HEALTH,
            "RDU50",
            now - timedelta(days=1, hours=2),
            now - timedelta(days=1, hours=1),
            (SafeguardingFlag.UNDER_16_PREGNANCY, SafeguardingFlag.CSE_CONCERN),
        ),
        Attendance(
            "child-1",
            f"V{seed:02d}0003",
            AttendanceSetting.EMERGENCY_DEPARTMENT,
            "RDU01",
            now - timedelta(days=5, hours=6),
            now - timedelta(days=5, hours=2),
            (SafeguardingFlag.CHILD_PROTECTION_PLAN, SafeguardingFlag.SUBSTANCE_MISUSE),
        ),
    )
    tracker = (
        TrackerRow(
            "child-1",
            CseLevel.LEVEL_3,
            (now - timedelta(days=70)).date(),
            None,
            None,
            True,
            (now - timedelta(days=60)).date(),
        ),
        TrackerRow(
            "child-2", CseLevel.LEVEL_2, (now - timedelta(days=30)).date(), None, None, False, None
        ),
        TrackerRow(
            "child-5", CseLevel.LEVEL_1, (now - timedelta(days=20)).date(), None, None, False, None
        ),
        TrackerRow(
            "child-6",
            CseLevel.LEVEL_2,
            (now - timedelta(days=150)).date(),
            (now - timedelta(days=90)).date(),
            RemovalReason.SUCCESSFUL_INTERVENTION,
            False,
            None,
        ),
    )
    intelligence = (
        IntelItem(
            f"INT-{seed:02d}-0001",
            "child-1",
            SLOUGH,
            LocationKind.HOTEL,
            "Budget hotel by the A4",
            "AB12 CDE",
            "silver",
            now - timedelta(days=44),
        ),
        IntelItem(
            f"INT-{seed:02d}-0002",
            None,
            WAM,
            LocationKind.TAKEAWAY,
            "Takeaway near the station",
            None,
            None,
            now - timedelta(days=7),
        ),
    )
    return Scenario(
        seed=seed,
        now=now,
        children=tuple(children),
        episodes=tuple(episodes),
        attendances=attendances,
        tracker=tracker,
        intelligence=intelligence,
    )


def _episode(
    rng: random.Random,
    n: int,
    *,
    key: str,
    missing_from: str,
    found_in: str,
    last_seen: datetime,
    now: datetime,
) -> Episode:
    grade = rng.choice((RiskGrade.LOW, RiskGrade.MEDIUM, RiskGrade.HIGH))
    reported = last_seen + timedelta(hours=rng.randint(1, 4))
    found = reported + timedelta(hours=rng.randint(6, 40))
    completed: datetime | None = found + timedelta(hours=rng.randint(20, 90))
    if n % 3 == 0 or (completed is not None and completed > now):
        completed = None  # some interviews are still outstanding: the 72-hour clock runs
    return Episode(
        child=key,
        episode_id=f"TVP-MP-2026-{n:06d}",
        occurrence_ref=f"43260{n:05d}",
        risk_grade=grade,
        reported_at=reported,
        last_seen_at=last_seen,
        last_seen_place=rng.choice(_PLACES[missing_from]),
        missing_from=missing_from,
        updated_risk=RiskGrade.HIGH if grade == RiskGrade.MEDIUM else None,
        found_at=found,
        found_place=rng.choice(_PLACES[found_in]),
        found_in=found_in,
        found_by=rng.choice((FoundBy.POLICE, FoundBy.SELF_RETURNED, FoundBy.CARER)),
        rhi_offered_at=found + timedelta(hours=12),
        rhi_completed_at=completed,
        cse_indicators=(CseIndicator.MISSING_EPISODES, CseIndicator.OLDER_ASSOCIATES)
        if key == "child-1"
        else (),
        coordinates=_COORDS[missing_from],
    )


def _replace(child: ChildRecord, **changes: object) -> ChildRecord:
    return replace(child, **changes)  # type: ignore[arg-type]
