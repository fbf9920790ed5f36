"""What every adapter is: the protocol, its typed errors, and the checks all of them share."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from broker.exceptions import PayloadInvalid, PayloadTooLarge
from schemas.events import Event, LawfulBasis

__all__ = [
    "LONDON",
    "MAX_CHILD_AGE_YEARS",
    "Adapter",
    "AdapterContext",
    "AdapterError",
    "InputTooLarge",
    "Problem",
    "check_date_of_birth",
    "check_not_future",
    "check_size",
    "event_id_for",
    "london_to_utc",
    "problems_from_validation",
    "strip_control",
]

LONDON = ZoneInfo("Europe/London")

#: Children's services work with care leavers up to 25; older dates of birth are implausible.
MAX_CHILD_AGE_YEARS = 25

#: Partner clocks drift; an instant this far ahead of ours is still accepted.
FUTURE_TOLERANCE = timedelta(minutes=15)

_NAMESPACE = uuid.UUID("6d1c7a52-4f0e-4c7e-9a43-2f6a1b1c0de5")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, and where: ``location`` names a field path,
    an HL7 segment and field (``PID-3``), or a row and column (``row 12, column nhs_number``).
    ``reason`` never quotes personal data."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class AdapterError(PayloadInvalid):
    """An input the adapter cannot translate; carries every problem found, each located."""

    code = "adapter_error"

    def __init__(self, adapter: str, problems: Iterable[Problem]) -> None:
        self.adapter = adapter
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem("message", "invalid"),)
        super().__init__(f"{adapter}: " + "; ".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[AdapterError], tuple[str, tuple[Problem, ...]]]:
        """Pickle by the constructor's own arguments (a message can be prepared in another
        process and its outcome, this error included, sent back)."""
        return (type(self), (self.adapter, self.problems))


class InputTooLarge(AdapterError, PayloadTooLarge):
    """The raw input is over the adapter's size limit; refused before parsing."""

    code = "too_large"


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What an adapter knows besides the raw bytes: who sent them, and what time it is.

    ``source_agency`` is the authenticated partner's party id (set by the ingress, never
    taken from the message itself when the ingress knows better). ``now`` is injectable so
    plausibility checks are testable.
    """

    source_agency: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    lawful_basis: LawfulBasis | None = None


@runtime_checkable
class Adapter(Protocol):
    """A pure translation from one native format to canonical events. No I/O."""

    #: The adapter's name as used by the CLI, the HTTP path and the AMQP ingest queue.
    name: str
    #: The largest raw input accepted, in bytes, checked before any parsing.
    max_bytes: int
    #: The party id assumed as the source when the caller does not say.
    default_source: str

    def parse(self, raw: bytes, context: AdapterContext) -> list[Event]:
        """Translate one native message (or file) into canonical events.

        Raises:
            AdapterError: with every problem found, each with its location.
        """
        ...


@runtime_checkable
class StreamingAdapter(Adapter, Protocol):
    """An adapter for bulk files that yields results row by row without loading the file."""

    def parse_stream(
        self, lines: Iterable[bytes], context: AdapterContext
    ) -> Iterator[Event | Problem]:
        """Yield each event, or a located problem for a row that could not be translated."""
        ...


__all__ += ["StreamingAdapter"]


def check_size(adapter: str, raw: bytes, max_bytes: int) -> None:
    """Refuse input over ``max_bytes`` before any parsing."""
    if len(raw) > max_bytes:
        raise InputTooLarge(
            adapter, [Problem("message", f"{len(raw)} bytes is over the limit of {max_bytes}")]
        )


def strip_control(text: str) -> str:
    """Remove control characters other than tab, newline and carriage return."""
    return _CONTROL.sub("", text)


def london_to_utc(local: datetime) -> datetime:
    """Interpret a naive partner timestamp as Europe/London wall time and convert to UTC.

    An aware value is simply converted. In the autumn overlap the first (BST) reading is
    taken (``fold=0``); a wall time inside the spring gap is read with the offset in force
    before the change, as ``zoneinfo`` does, i.e. 01:30 on the spring day is 01:30 UTC.
    """
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return local.replace(tzinfo=LONDON).astimezone(UTC)


def check_not_future(value: datetime, now: datetime) -> str | None:
    """A reason when ``value`` lies in the future beyond the clock tolerance, else None."""
    if value > now + FUTURE_TOLERANCE:
        return "is in the future"
    return None


def check_date_of_birth(value: date, now: datetime) -> str | None:
    """A reason when a child's date of birth is implausible, else None."""
    today = now.astimezone(LONDON).date()
    if value > today:
        return "date of birth is in the future"
    if (today.year - value.year) > MAX_CHILD_AGE_YEARS + 1:
        return f"date of birth gives an age over {MAX_CHILD_AGE_YEARS}"
    return None


def event_id_for(*parts: str) -> uuid.UUID:
    """A deterministic event id, so a partner's resent message keeps its id (idempotency)."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join(parts))


def problems_from_validation(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """Turn pydantic's errors into located problems without echoing input values."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(
            str(p) for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-")
        )
        location = f"{prefix}{path}" if path else (prefix.rstrip(".") or "message")
        problems.append(Problem(location, err["msg"]))
    return problems
