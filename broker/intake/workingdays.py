"""Working days in England and Wales: bank holidays, opening hours and the one-working-day rule.

The MASH works Monday to Friday, 09:00–17:00 Europe/London (configurable), except on
England and Wales bank holidays. The rule for "one working day after receipt" is:

    the deadline is the close of the first *whole* working day after receipt, that is the
    first working day whose opening time is at or after the moment of receipt.

So a contact received at 10:00 on a Monday is due at 17:00 on Tuesday; one received at
08:30 on a Monday, at 18:00 on a Friday or at any time on a Saturday is due at 17:00 on
the next working day's close (Monday for the last two). Every contact thereby gets at
least one full staffed working day, and out-of-hours contacts do not get a second one.
All arithmetic is in Europe/London local time and the results are UTC instants, so the
rule holds across the changes to and from British Summer Time. docs/intake.md explains
the choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.exceptions import ConfigurationError
from broker.intake._time import require_utc

__all__ = [
    "ENGLAND_AND_WALES_BANK_HOLIDAYS",
    "WorkingCalendar",
    "bank_holidays",
    "easter_sunday",
    "rule_bank_holidays",
]

_D = date

#: England and Wales bank holidays as published by GOV.UK, by year. Years outside the
#: table fall back to :func:`rule_bank_holidays`; configuration can replace any year.
ENGLAND_AND_WALES_BANK_HOLIDAYS: Mapping[int, frozenset[date]] = MappingProxyType(
    {
        2025: frozenset(
            {
                _D(2025, 1, 1),  # New Year's Day
                _D(2025, 4, 18),  # Good Friday
                _D(2025, 4, 21),  # Easter Monday
                _D(2025, 5, 5),  # Early May bank holiday
                _D(2025, 5, 26),  # Spring bank holiday
                _D(2025, 8, 25),  # Summer bank holiday
                _D(2025, 12, 25),  # Christmas Day
                _D(2025, 12, 26),  # Boxing Day
            }
        ),
        2026: frozenset(
            {
                _D(2026, 1, 1),
                _D(2026, 4, 3),
                _D(2026, 4, 6),
                _D(2026, 5, 4),
                _D(2026, 5, 25),
                _D(2026, 8, 31),
                _D(2026, 12, 25),
                _D(2026, 12, 28),  # Boxing Day (substitute day: 26 December is a Saturday)
            }
        ),
        2027: frozenset(
            {
                _D(2027, 1, 1),
                _D(2027, 3, 26),
                _D(2027, 3, 29),
                _D(2027, 5, 3),
                _D(2027, 5, 31),
                _D(2027, 8, 30),
                _D(2027, 12, 27),  # Christmas Day (substitute day: a Saturday)
                _D(2027, 12, 28),  # Boxing Day (substitute day: a Sunday)
            }
        ),
        2028: frozenset(
            {
                _D(2028, 1, 3),  # New Year's Day (substitute day: 1 January is a Saturday)
                _D(2028, 4, 14),
                _D(2028, 4, 17),
                _D(2028, 5, 1),
                _D(2028, 5, 29),
                _D(2028, 8, 28),
                _D(2028, 12, 25),
                _D(2028, 12, 26),
            }
        ),
    }
)

_SATURDAY, _SUNDAY = 5, 6
_MONDAY = 0
#: More consecutive closed days than this means the configuration closes the office for good.
_MAX_CLOSED_RUN = 400


def easter_sunday(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Meeus/Jones/Butcher algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _first_monday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(_MONDAY - first.weekday()) % 7)


def _last_monday(year: int, month: int) -> date:
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - _MONDAY) % 7)


def _with_substitutes(days: Iterable[date]) -> set[date]:
    """Move holidays that fall at a weekend to the next weekdays not already holidays."""
    ordered = sorted(days)
    taken = {d for d in ordered if d.weekday() < _SATURDAY}
    for day in ordered:
        if day.weekday() >= _SATURDAY:
            candidate = day
            while candidate.weekday() >= _SATURDAY or candidate in taken:
                candidate += timedelta(days=1)
            taken.add(candidate)
    return taken


def rule_bank_holidays(year: int) -> frozenset[date]:
    """The England and Wales bank holidays the standing rules give for ``year``.

    New Year's Day, Good Friday, Easter Monday, the first and last Mondays of May, the last
    Monday of August, Christmas Day and Boxing Day, with substitute weekdays for those at a
    weekend. One-off holidays (a coronation, a jubilee, a state funeral) and moved days are
    proclaimed separately and must come from the built-in table or configuration.
    """
    easter = easter_sunday(year)
    fixed = _with_substitutes([date(year, 1, 1)]) | _with_substitutes(
        [date(year, 12, 25), date(year, 12, 26)]
    )
    movable = {
        easter - timedelta(days=2),
        easter + timedelta(days=1),
        _first_monday(year, 5),
        _last_monday(year, 5),
        _last_monday(year, 8),
    }
    return frozenset(fixed | movable)


def bank_holidays(year: int) -> frozenset[date]:
    """The built-in table's holidays for ``year``, or the standing rules' outside the table."""
    return ENGLAND_AND_WALES_BANK_HOLIDAYS.get(year) or rule_bank_holidays(year)


def _parse_time(value: time | str, name: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise ConfigurationError(f"intake calendar {name}: not a HH:MM time") from exc


def _parse_date(value: date | str, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigurationError(f"intake calendar {name}: not an ISO date (YYYY-MM-DD)") from exc


def _empty_overrides() -> Mapping[int, frozenset[date]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """The MASH's working days and hours, and deadlines counted in them.

    Attributes:
        opening: local opening time of a working day.
        closing: local closing time of a working day; after ``opening``.
        timezone: IANA zone the working day is defined in.
        holiday_overrides: per-year holiday sets that replace the built-in ones.
        extra_closures: further closed days, e.g. an office closure between Christmas and
            New Year agreed locally.
        weekend: weekday numbers (Monday 0) that are never working days.
    """

    opening: time = time(9, 0)
    closing: time = time(17, 0)
    timezone: str = "Europe/London"
    holiday_overrides: Mapping[int, frozenset[date]] = field(default_factory=_empty_overrides)
    extra_closures: frozenset[date] = frozenset()
    weekend: frozenset[int] = frozenset({_SATURDAY, _SUNDAY})

    def __post_init__(self) -> None:
        if self.opening.tzinfo is not None or self.closing.tzinfo is not None:
            raise ConfigurationError("intake calendar: opening and closing are local wall times")
        if not self.opening < self.closing:
            raise ConfigurationError("intake calendar: opening must be before closing")
        if not self.weekend <= set(range(7)) or len(self.weekend) >= 7:
            raise ConfigurationError("intake calendar weekend: weekday numbers 0-6, not all seven")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(
                f"intake calendar timezone {self.timezone!r}: unknown"
            ) from exc
        # A read-only copy, so a caller's dict cannot change the calendar afterwards.
        object.__setattr__(
            self, "holiday_overrides", MappingProxyType(dict(self.holiday_overrides))
        )

    @classmethod
    def from_config(
        cls,
        *,
        holidays: Iterable[date | str] | None = None,
        extra_closures: Iterable[date | str] = (),
        opening: time | str = "09:00",
        closing: time | str = "17:00",
        timezone: str = "Europe/London",
    ) -> WorkingCalendar:
        """A calendar from configuration values (ISO strings are accepted).

        Args:
            holidays: bank holidays that replace the built-in ones for every year they
                cover; years not mentioned keep the built-in table (or the rules).
            extra_closures: further closed days on top of the bank holidays.
            opening: local opening time, ``HH:MM``.
            closing: local closing time, ``HH:MM``.
            timezone: IANA zone of the working day.

        Raises:
            ConfigurationError: a value cannot be parsed or the hours are inverted.
        """
        by_year: dict[int, set[date]] = {}
        for value in holidays or ():
            day = _parse_date(value, "holidays")
            by_year.setdefault(day.year, set()).add(day)
        return cls(
            opening=_parse_time(opening, "opening"),
            closing=_parse_time(closing, "closing"),
            timezone=timezone,
            holiday_overrides={year: frozenset(days) for year, days in by_year.items()},
            extra_closures=frozenset(_parse_date(d, "extra_closures") for d in extra_closures),
        )

    @property
    def zone(self) -> ZoneInfo:
        """The zone object for :attr:`timezone`."""
        return ZoneInfo(self.timezone)

    def holidays_in(self, year: int) -> frozenset[date]:
        """The bank holidays this calendar observes in ``year``."""
        override = self.holiday_overrides.get(year)
        return override if override is not None else bank_holidays(year)

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is neither a weekend day, a bank holiday nor a closure."""
        return (
            day.weekday() not in self.weekend
            and day not in self.extra_closures
            and day not in self.holidays_in(day.year)
        )

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``.

        Raises:
            ConfigurationError: no working day within a year (closures cover everything).
        """
        candidate = day
        for _ in range(_MAX_CLOSED_RUN):
            candidate += timedelta(days=1)
            if self.is_working_day(candidate):
                return candidate
        raise ConfigurationError("intake calendar: no working day within 400 days")

    def local_date(self, instant: datetime) -> date:
        """The calendar date in the calendar's zone at ``instant``."""
        return require_utc(instant, "instant").astimezone(self.zone).date()

    def opens_at(self, day: date) -> datetime:
        """The UTC instant the working day ``day`` opens (local :attr:`opening`)."""
        return datetime.combine(day, self.opening, tzinfo=self.zone).astimezone(UTC)

    def closes_at(self, day: date) -> datetime:
        """The UTC instant the working day ``day`` closes (local :attr:`closing`)."""
        return datetime.combine(day, self.closing, tzinfo=self.zone).astimezone(UTC)

    def is_open(self, instant: datetime) -> bool:
        """True when ``instant`` lies within the opening hours of a working day."""
        day = self.local_date(instant)
        return self.is_working_day(day) and self.opens_at(day) <= instant < self.closes_at(day)

    def first_whole_working_day(self, instant: datetime) -> date:
        """The first working day whose opening is at or after ``instant``."""
        moment = require_utc(instant, "instant")
        day = self.local_date(moment)
        if self.is_working_day(day) and self.opens_at(day) >= moment:
            return day
        return self.next_working_day(day)

    def one_working_day_after(self, instant: datetime) -> datetime:
        """The deadline one working day after receipt at ``instant`` (UTC).

        The close of the first whole working day after receipt: see the module docstring.
        """
        return self.closes_at(self.first_whole_working_day(instant))

    def working_days_after(self, instant: datetime, days: int) -> datetime:
        """The close of the ``days``-th whole working day after ``instant`` (``days`` >= 1)."""
        if days < 1:
            raise ValueError("days must be at least 1")
        day = self.first_whole_working_day(instant)
        for _ in range(days - 1):
            day = self.next_working_day(day)
        return self.closes_at(day)
