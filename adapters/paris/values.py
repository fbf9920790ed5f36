"""Reading one Paris cell: UK or ISO dates, local times to UTC, flags, levels and codes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from adapters.base import london_to_utc
from schemas.events import CseLevel, RemovalReason
from schemas.person import PlacementType, Sex

__all__ = [
    "parse_date",
    "parse_datetime",
    "parse_flag",
    "parse_level",
    "parse_placement_type",
    "parse_removal_reason",
    "parse_sex",
]

_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UK_DATETIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?"
)

_DATE_REASON = "not a date (dd/mm/yyyy or yyyy-mm-dd)"
_DATETIME_REASON = (
    "not a date and time (dd/mm/yyyy hh:mm[:ss], or ISO 8601 yyyy-mm-ddThh:mm[:ss] "
    "with an optional offset)"
)

_TRUE = frozenset({"y", "yes", "true", "1"})
_FALSE = frozenset({"n", "no", "false", "0"})

_SEXES = {
    "m": Sex.MALE,
    "male": Sex.MALE,
    "f": Sex.FEMALE,
    "female": Sex.FEMALE,
    "o": Sex.OTHER,
    "other": Sex.OTHER,
    "u": Sex.UNKNOWN,
    "unknown": Sex.UNKNOWN,
}
_LEVELS = {"1": CseLevel.LEVEL_1, "2": CseLevel.LEVEL_2, "3": CseLevel.LEVEL_3}


def parse_date(text: str) -> date:
    """A calendar date written ``dd/mm/yyyy`` (UK order, never US) or ``yyyy-mm-dd``.

    Raises:
        ValueError: with a reason that does not quote the text.
    """
    try:
        if uk := _UK_DATE.fullmatch(text):
            return date(int(uk[3]), int(uk[2]), int(uk[1]))
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        raise ValueError("not a real calendar date") from None
    raise ValueError(_DATE_REASON)


def parse_datetime(text: str) -> datetime:
    """An instant in UTC. Without an offset the time is Europe/London wall time.

    Raises:
        ValueError: with a reason that does not quote the text.
    """
    try:
        if uk := _UK_DATETIME.fullmatch(text):
            day, month, year, hour, minute, second = uk.groups()
            local = datetime(  # noqa: DTZ001 - a naive London wall time, converted below
                int(year), int(month), int(day), int(hour), int(minute), int(second or 0)
            )
            return london_to_utc(local)
        if _ISO_DATETIME.fullmatch(text):
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                return london_to_utc(parsed)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        # OverflowError: an offset that carries the instant past year 1 or year 9999.
        raise ValueError("not a real date and time") from None
    raise ValueError(_DATETIME_REASON)


def parse_flag(text: str) -> bool:
    """``Y``/``N`` (also yes/no, true/false, 1/0, any case).

    Raises:
        ValueError: the text is none of those.
    """
    folded = text.lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError("not a flag (Y or N)")


def parse_level(text: str) -> CseLevel:
    """A CSE risk level: ``1``, ``2`` or ``3``.

    Raises:
        ValueError: any other text.
    """
    try:
        return _LEVELS[text]
    except KeyError:
        raise ValueError("not a CSE risk level (1, 2 or 3)") from None


def parse_sex(text: str) -> Sex:
    """``M``/``F``/``O``/``U`` or the words, any case.

    Raises:
        ValueError: any other text.
    """
    try:
        return _SEXES[text.lower()]
    except KeyError:
        raise ValueError("not a sex code (M, F, O or U)") from None


def _code(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(" ", "_")


def parse_placement_type(text: str) -> PlacementType:
    """A placement type code; hyphens, spaces and case are forgiven.

    Raises:
        ValueError: not one of the codes.
    """
    try:
        return PlacementType(_code(text))
    except ValueError:
        allowed = ", ".join(p.value for p in PlacementType)
        raise ValueError(f"not a placement type ({allowed})") from None


def parse_removal_reason(text: str) -> RemovalReason:
    """A reason for removal from the CSE tracker; hyphens, spaces and case are forgiven.

    Raises:
        ValueError: not one of the codes.
    """
    try:
        return RemovalReason(_code(text))
    except ValueError:
        allowed = ", ".join(r.value for r in RemovalReason)
        raise ValueError(f"not a removal reason ({allowed})") from None
