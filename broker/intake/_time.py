"""Time helpers shared by the intake modules: UTC checks, London dates, calendar months."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from broker.intake.errors import InvalidRecord

LONDON = ZoneInfo("Europe/London")


def require_utc(value: datetime, where: str) -> datetime:
    """``value`` converted to UTC; naive datetimes are refused because their zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecord(f"{where}: naive datetime; intake times must be timezone-aware")
    return value.astimezone(UTC)


def optional_utc(value: datetime | None, where: str) -> datetime | None:
    """Like :func:`require_utc` but lets ``None`` through."""
    return None if value is None else require_utc(value, where)


def london_date(instant: datetime) -> date:
    """The calendar date in Europe/London at ``instant``."""
    return require_utc(instant, "instant").astimezone(LONDON).date()


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, clamped to the end of a shorter month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def iter_months(first: date, last: date) -> Iterator[date]:
    """The first day of every month from ``first``'s month to ``last``'s month inclusive."""
    current = month_start(first)
    while current <= last:
        yield current
        current = add_months(current, 1)


def age_in_years(born: date, on: date) -> int:
    """Completed years of age on ``on``; a 29 February birthday counts from 1 March."""
    before_birthday = (on.month, on.day) < (born.month, born.day)
    return on.year - born.year - int(before_birthday)
