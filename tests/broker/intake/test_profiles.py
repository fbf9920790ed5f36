"""Strategic profiles: counts by period and dimension, distinct counting, suppression."""

from __future__ import annotations

import csv
import io
from datetime import date
from uuid import UUID

import pytest

from broker.exceptions import ConfigurationError
from broker.intake import (
    Count,
    age_band,
    associate_profile,
    is_cse_victim_event,
    location_profile,
    period_label,
    profile_csv,
    suppress,
    vehicle_profile,
    victim_profile,
)
from schemas.events import (
    Associate,
    AttendanceSetting,
    CseLevel,
    CseScreening,
    Event,
    Intelligence,
    IntelligenceLocation,
    LocationKind,
    MissingUpdated,
    SafeguardingFlag,
    UnscheduledCareAttendance,
    Vehicle,
)
from schemas.person import LookedAfter, Sex
from tests.broker.intake.factories import READING, SLOUGH, WAM, child, event, utc


def intel(at_month: int, **kwargs: object) -> Event:
    return event(Intelligence(**kwargs), at=utc(2026, at_month, 10, 12, 0))  # type: ignore[arg-type]


def hotel(
    description: str = "Budget hotel by the A4", area: str | None = SLOUGH
) -> IntelligenceLocation:
    return IntelligenceLocation(
        kind=LocationKind.HOTEL, description=description, local_authority=area
    )


def cells(table_rows: object) -> dict[tuple[str, tuple[str, ...]], str]:
    return {(r.period, r.dimensions): r.count.display for r in table_rows}  # type: ignore[attr-defined]


# --- suppression ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "shown", "value"),
    [(0, "0", 0), (1, "<5", None), (4, "<5", None), (5, "5", 5), (12, "12", 12)],
)
def test_small_numbers_are_suppressed(count: int, shown: str, value: int | None) -> None:
    assert suppress(count) == Count(value, shown)
    assert suppress(count).suppressed is (value is None)


def test_suppression_threshold_is_configurable() -> None:
    assert suppress(9, threshold=10).display == "<10"
    assert suppress(1, threshold=1).display == "1"
    with pytest.raises(ConfigurationError):
        suppress(3, threshold=0)


# --- periods -------------------------------------------------------------------------


def test_periods_are_london_calendar_months_and_quarters() -> None:
    assert period_label(utc(2026, 6, 30, 23, 30)) == "2026-07"  # 00:30 BST on 1 July
    assert period_label(utc(2026, 10, 31, 23, 30)) == "2026-10"  # GMT again by then
    assert period_label(utc(2026, 9, 30, 23, 30), "quarter") == "2026-Q4"
    assert period_label(utc(2026, 1, 1, 0, 0), "quarter") == "2026-Q1"


# --- intelligence profiles -----------------------------------------------------------


def test_locations_count_distinct_places_by_kind_area_and_month() -> None:
    events = [
        intel(3, locations=(hotel(),)),
        intel(3, locations=(hotel("budget HOTEL by the a4"),)),  # the same place again
        intel(3, locations=(hotel("Riverside hotel"), hotel("Station hotel", area=None))),
        intel(3, area=READING, locations=(hotel("Hotel by the ring road", area=None),)),
        intel(
            4,
            locations=(
                IntelligenceLocation(
                    kind=LocationKind.PARK, description="Town park", local_authority=WAM
                ),
            ),
        ),
    ]
    table = location_profile(events, threshold=1)
    assert cells(table.rows) == {
        ("2026-03", ("hotel", SLOUGH)): "2",
        ("2026-03", ("hotel", "unknown")): "1",
        ("2026-03", ("hotel", READING)): "1",
        ("2026-04", ("park", WAM)): "1",
    }
    suppressed = location_profile(events)
    assert {r.count.display for r in suppressed.rows} == {"<5"}
    assert all(r.count.value is None for r in suppressed.rows)


def test_a_redelivered_event_is_counted_once() -> None:
    one = intel(3, locations=(hotel(),), vehicles=(Vehicle(registration="AB12 CDE"),))
    table = vehicle_profile([one, one], threshold=1)
    assert cells(table.rows) == {("2026-03", ("unknown",)): "1"}


def test_vehicles_count_distinct_registrations() -> None:
    events = [
        intel(
            5,
            area=SLOUGH,
            vehicles=(Vehicle(registration="AB12 CDE"), Vehicle(registration="AB12CDE")),
        ),
        intel(5, area=SLOUGH, vehicles=(Vehicle(registration="XY34 ZZZ"), Vehicle(make="Van"))),
        intel(6, area=SLOUGH, vehicles=(Vehicle(registration="AB12 CDE"),)),
    ]
    assert cells(vehicle_profile(events, threshold=1).rows) == {
        ("2026-05", (SLOUGH,)): "2",
        ("2026-06", (SLOUGH,)): "1",
    }
    assert cells(vehicle_profile(events, granularity="quarter", threshold=1).rows) == {
        ("2026-Q2", (SLOUGH,)): "2",
    }


def test_associates_by_role() -> None:
    offender = Associate(
        role="suspected_offender", description="Older male", police_person_ref="TVP/P/5"
    )
    unknown_peer = Associate(role="peer", description="Girl from school")
    events = [
        intel(7, associates=(offender, unknown_peer)),
        intel(7, associates=(offender, unknown_peer)),
    ]
    assert cells(associate_profile(events, threshold=1).rows) == {
        ("2026-07", ("peer",)): "2",  # undescribed peers cannot be told apart
        ("2026-07", ("suspected_offender",)): "1",  # the same reference counts once
    }


# --- victims -------------------------------------------------------------------------


def screening(at: tuple[int, int, int]) -> CseScreening:
    return CseScreening(level=CseLevel.LEVEL_2, screened_at=utc(*at), screened_by="wam-cs")


def test_victims_count_distinct_children_by_each_dimension() -> None:
    placed = LookedAfter(responsible_authority=SLOUGH, placed_in=READING)
    keyed = [
        (
            "c1",
            event(
                screening((2026, 3, 1)), subject=child(born=date(2012, 3, 5)), at=utc(2026, 3, 1)
            ),
        ),
        # c1 again later in the month, now looked after: the latest attributes count.
        (
            "c1",
            event(
                screening((2026, 3, 20)),
                subject=child(born=date(2012, 3, 5), looked_after=placed),
                at=utc(2026, 3, 20),
            ),
        ),
        (
            "c2",
            event(
                screening((2026, 3, 2)),
                subject=child(nhs=8, born=date(2009, 1, 1), sex=Sex.MALE),
                at=utc(2026, 3, 2),
            ),
        ),
        (
            "c3",
            event(
                screening((2026, 3, 3)),
                subject=child(nhs=9, born=None, sex=None, home=None),
                at=utc(2026, 3, 3),
            ),
        ),
        # Not a CSE event: not a victim in this profile.
        (
            "c4",
            event(MissingUpdated(episode_id="EP-0001"), subject=child(nhs=10), at=utc(2026, 3, 4)),
        ),
    ]
    profile = victim_profile(keyed, threshold=1)
    assert cells(profile.by_age_band.rows) == {
        ("2026-03", ("13-15",)): "1",  # c1 turned 14 on 5 March
        ("2026-03", ("16-17",)): "1",
        ("2026-03", ("unknown",)): "1",
    }
    assert cells(profile.by_sex.rows) == {
        ("2026-03", ("female",)): "1",
        ("2026-03", ("male",)): "1",
        ("2026-03", ("unknown",)): "1",
    }
    assert cells(profile.by_looked_after.rows) == {
        ("2026-03", ("looked after",)): "1",
        ("2026-03", ("not looked after",)): "2",
    }
    assert cells(profile.by_area.rows) == {
        ("2026-03", (READING,)): "1",  # placed in Reading
        ("2026-03", (WAM,)): "1",
        ("2026-03", ("unknown",)): "1",
    }


def test_victim_tables_and_csv_hold_no_names_or_identifiers() -> None:
    subject = child(given="Lacey", family="Pellington", paris="P-400001")
    keyed = [
        (f"child-key-{i}", event(screening((2026, 8, 1)), subject=subject, at=utc(2026, 8, i + 1)))
        for i in range(6)
    ]
    profile = victim_profile(keyed)
    text = "".join(profile_csv(t) for t in (profile.by_age_band, profile.by_sex, profile.by_area))
    for personal in (
        "Lacey",
        "Pellington",
        "P-400001",
        "child-key",
        "2012",
        subject.nhs_number or "",
    ):
        assert personal not in text
    rows = list(csv.reader(io.StringIO(profile_csv(profile.by_sex))))
    assert rows == [["period", "sex", "count"], ["2026-08", "female", "6"]]


def test_cse_victim_events() -> None:
    subject = child()
    flagged = UnscheduledCareAttendance(
        setting=AttendanceSetting.EMERGENCY_DEPARTMENT,
        site="RDU01",
        arrived_at=utc(2026, 1, 1),
        flags=(SafeguardingFlag.CSE_CONCERN,),
    )
    unflagged = flagged.model_copy(update={"flags": (SafeguardingFlag.SELF_HARM,)})
    assert is_cse_victim_event(event(flagged, subject=subject))
    assert not is_cse_victim_event(event(unflagged, subject=subject))
    assert is_cse_victim_event(event(screening((2026, 1, 1)), subject=subject))


@pytest.mark.parametrize(
    ("born", "band"),
    [
        (None, "unknown"),
        (date(2017, 1, 1), "under 10"),
        (date(2014, 1, 1), "10-12"),
        (date(2011, 1, 1), "13-15"),
        (date(2009, 1, 1), "16-17"),
        (date(2008, 1, 1), "18 and over"),
    ],
)
def test_age_bands(born: date | None, band: str) -> None:
    assert age_band(born, date(2026, 6, 1)) == band


def test_distinct_events_at_the_same_time_both_count() -> None:
    # Event ids distinguish redeliveries; two distinct events at the same time both count.
    a = event(Intelligence(vehicles=(Vehicle(registration="AA11 AAA"),)), event_id=UUID(int=1001))
    b = event(Intelligence(vehicles=(Vehicle(registration="BB22 BBB"),)), event_id=UUID(int=1002))
    assert cells(vehicle_profile([a, b], threshold=1).rows) == {("2026-11", ("unknown",)): "2"}
