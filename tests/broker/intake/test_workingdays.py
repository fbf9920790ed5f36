"""Working days: the bank-holiday table, the one-working-day rule, clock changes, configuration."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exceptions import ConfigurationError
from broker.intake import (
    ENGLAND_AND_WALES_BANK_HOLIDAYS,
    InvalidRecord,
    WorkingCalendar,
    bank_holidays,
    easter_sunday,
    rule_bank_holidays,
)
from tests.broker.intake.factories import utc

LONDON = ZoneInfo("Europe/London")
CAL = WorkingCalendar()


def london(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A Europe/London wall-clock time as an aware datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def test_2026_table_is_the_published_list() -> None:
    assert ENGLAND_AND_WALES_BANK_HOLIDAYS[2026] == {
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 28),
    }


@pytest.mark.parametrize("year", [2025, 2026, 2027, 2028])
def test_the_standing_rules_reproduce_the_table(year: int) -> None:
    # Two independent sources (the looked-up dates and the rules) agree for every year.
    assert rule_bank_holidays(year) == ENGLAND_AND_WALES_BANK_HOLIDAYS[year]
    assert len(ENGLAND_AND_WALES_BANK_HOLIDAYS[year]) == 8
    assert all(d.weekday() < 5 for d in ENGLAND_AND_WALES_BANK_HOLIDAYS[year])


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2000, date(2000, 4, 23)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2028, date(2028, 4, 16)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_substitute_days_for_christmas_and_new_year() -> None:
    assert {date(2027, 12, 27), date(2027, 12, 28)} <= bank_holidays(2027)  # Sat/Sun
    assert date(2028, 1, 3) in bank_holidays(2028)  # 1 January a Saturday
    assert {date(2033, 12, 26), date(2033, 12, 27)} <= rule_bank_holidays(2033)  # 25th a Sunday
    assert date(2033, 1, 3) in rule_bank_holidays(2033)  # 1 January a Saturday


def test_years_outside_the_table_use_the_rules() -> None:
    assert 2029 not in ENGLAND_AND_WALES_BANK_HOLIDAYS
    assert date(2029, 3, 30) in bank_holidays(2029)  # Good Friday (Easter 1 April 2029)
    assert not CAL.is_working_day(date(2029, 4, 2))  # Easter Monday


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # Within hours: the close of the next working day.
        (london(2026, 11, 16, 10, 0), london(2026, 11, 17, 17, 0)),  # Monday morning
        (london(2026, 11, 20, 16, 59), london(2026, 11, 23, 17, 0)),  # Friday, a minute to close
        # Out of hours: the close of the first whole working day.
        (london(2026, 11, 16, 8, 30), london(2026, 11, 16, 17, 0)),  # before opening
        (london(2026, 11, 16, 9, 0), london(2026, 11, 16, 17, 0)),  # at opening exactly
        (london(2026, 11, 20, 17, 0), london(2026, 11, 23, 17, 0)),  # Friday at close
        (london(2026, 11, 21, 14, 0), london(2026, 11, 23, 17, 0)),  # Saturday
        (london(2026, 11, 22, 23, 59), london(2026, 11, 23, 17, 0)),  # Sunday night
        # Bank holidays: Easter 2026 and Christmas 2026 (Boxing Day substitute on the 28th).
        (london(2026, 4, 2, 11, 0), london(2026, 4, 7, 17, 0)),  # Thursday before Good Friday
        (london(2026, 4, 6, 11, 0), london(2026, 4, 7, 17, 0)),  # on Easter Monday
        (london(2026, 12, 24, 10, 0), london(2026, 12, 29, 17, 0)),
        (london(2026, 12, 31, 12, 0), london(2027, 1, 4, 17, 0)),  # New Year's Day a Friday
    ],
)
def test_one_working_day_after(received: datetime, due: datetime) -> None:
    assert CAL.one_working_day_after(received) == due.astimezone(UTC)


def test_spring_clock_change_weekend() -> None:
    # Clocks go forward at 01:00 UTC on Sunday 29 March 2026: Friday is GMT, Monday BST.
    received = utc(2026, 3, 27, 10, 0)  # 10:00 GMT
    assert CAL.one_working_day_after(received) == utc(2026, 3, 30, 16, 0)  # 17:00 BST
    # Received in the skipped hour's aftermath on the Sunday itself.
    assert CAL.one_working_day_after(utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 30, 16, 0)


def test_autumn_clock_change_weekend() -> None:
    # Clocks go back at 01:00 UTC on Sunday 25 October 2026: Friday is BST, Monday GMT.
    received = utc(2026, 10, 23, 9, 0)  # 10:00 BST
    assert CAL.one_working_day_after(received) == utc(2026, 10, 26, 17, 0)  # 17:00 GMT
    # In the repeated hour (01:00-02:00 local happens twice) on the Sunday.
    assert CAL.one_working_day_after(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 17, 0)
    assert CAL.one_working_day_after(utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 26, 17, 0)


def test_opening_and_closing_follow_local_time_across_the_year() -> None:
    assert CAL.opens_at(date(2026, 1, 5)) == utc(2026, 1, 5, 9, 0)
    assert CAL.opens_at(date(2026, 7, 6)) == utc(2026, 7, 6, 8, 0)
    assert CAL.closes_at(date(2026, 7, 6)) == utc(2026, 7, 6, 16, 0)


def test_is_open_boundaries() -> None:
    assert not CAL.is_open(london(2026, 11, 16, 8, 59))
    assert CAL.is_open(london(2026, 11, 16, 9, 0))
    assert CAL.is_open(london(2026, 11, 16, 16, 59))
    assert not CAL.is_open(london(2026, 11, 16, 17, 0))
    assert not CAL.is_open(london(2026, 12, 25, 12, 0))
    assert not CAL.is_open(london(2026, 11, 21, 12, 0))


def test_working_days_after_counts_whole_days() -> None:
    received = london(2026, 4, 2, 11, 0)  # Thursday before Easter
    assert CAL.working_days_after(received, 1) == CAL.one_working_day_after(received)
    assert CAL.working_days_after(received, 2) == london(2026, 4, 8, 17, 0).astimezone(UTC)
    with pytest.raises(ValueError):
        CAL.working_days_after(received, 0)


def test_configured_holidays_replace_that_year_only() -> None:
    # A year's list replaces the built-in one whole: here 2026 without Easter Monday.
    year_2026 = sorted(ENGLAND_AND_WALES_BANK_HOLIDAYS[2026] - {date(2026, 4, 6)})
    cal = WorkingCalendar.from_config(holidays=year_2026, extra_closures=["2026-12-24"])
    assert not cal.is_working_day(date(2026, 4, 3))
    assert cal.is_working_day(date(2026, 4, 6))
    assert not cal.is_working_day(date(2027, 3, 29))  # other years keep the built-in table
    assert not cal.is_working_day(date(2026, 12, 24))
    assert cal.one_working_day_after(london(2026, 12, 23, 12, 0)) == london(
        2026, 12, 29, 17, 0
    ).astimezone(UTC)


def test_configured_hours() -> None:
    cal = WorkingCalendar.from_config(opening="08:00", closing="18:30")
    assert cal.one_working_day_after(london(2026, 11, 16, 7, 59)) == london(
        2026, 11, 16, 18, 30
    ).astimezone(UTC)
    assert cal.one_working_day_after(london(2026, 11, 16, 8, 1)) == london(
        2026, 11, 17, 18, 30
    ).astimezone(UTC)


def test_calendar_is_immune_to_later_changes_of_the_mapping_it_was_given() -> None:
    overrides = {2026: frozenset({date(2026, 6, 1)})}
    cal = WorkingCalendar(holiday_overrides=overrides)
    overrides[2026] = frozenset()
    assert not cal.is_working_day(date(2026, 6, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"opening": "17:00", "closing": "09:00"},
        {"opening": "nine"},
        {"holidays": ["2026-13-01"]},
        {"timezone": "Europe/Nowhere"},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        WorkingCalendar.from_config(**kwargs)


def test_a_calendar_with_no_working_days_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        WorkingCalendar(weekend=frozenset(range(7)))
    always_closed = WorkingCalendar(
        extra_closures=frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(500))
    )
    with pytest.raises(ConfigurationError):
        always_closed.next_working_day(date(2026, 1, 1))


def test_naive_receipt_time_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="naive"):
        CAL.one_working_day_after(datetime(2026, 11, 16, 10, 0))  # noqa: DTZ001


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1),  # noqa: DTZ001
        max_value=datetime(2029, 12, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_deadline_is_a_close_after_a_whole_working_day(received: datetime) -> None:
    due = CAL.one_working_day_after(received)
    local = due.astimezone(LONDON)
    assert due > received
    assert local.time() == time(17, 0)
    assert CAL.is_working_day(local.date())
    # The whole of that working day lies after receipt ...
    assert CAL.opens_at(local.date()) >= received
    # ... and no earlier working day does: the deadline is the first such close.
    day = local.date() - timedelta(days=1)
    while day >= received.astimezone(LONDON).date():
        if CAL.is_working_day(day):
            assert CAL.opens_at(day) < received
        day -= timedelta(days=1)
