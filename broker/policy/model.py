"""The information-sharing agreement as typed, immutable models: parties, rules, conditions."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from schemas.common import OnsCode, PartyId
from schemas.events import CseLevel, EventType, LawfulBasis, RiskGrade, SafeguardingFlag

__all__ = [
    "UK",
    "Agreement",
    "BoroughCondition",
    "BoroughRole",
    "Conditions",
    "FieldPath",
    "Partnership",
    "Party",
    "PartyKind",
    "Recipient",
    "Retention",
    "Rule",
    "Selector",
    "in_force",
]

#: Agreement dates are the partnership's calendar dates, so they are read in UK time.
UK = ZoneInfo("Europe/London")

#: A dotted path into the canonical event, optionally ending in ``.*`` for a whole group.
FieldPath = Annotated[
    str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*(\.\*)?$")
]

#: A rule or field-set id: lower case, digits and hyphens, like party ids.
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]

#: A key id as the key registry names it; carried, not resolved, by the agreement.
KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]

#: An adapter name as ``adapters.ADAPTER_NAMES`` spells it (``police``, ``paris-csv``).
AdapterName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]

#: Human-readable text a data protection officer reads: purpose, description, names.
Prose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


def _version_text(value: object) -> object:
    # YAML reads `version: 3` as an int; accept it, but refuse floats, which lose digits
    # (`1.10` would silently become "1.1").
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # ValueError, not TypeError: pydantic reports only the former as a validation error.
        raise ValueError('write the version in quotes, e.g. version: "1.10"')  # noqa: TRY004
    return value


Version = Annotated[
    str,
    BeforeValidator(_version_text),
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"),
]


class _Model(BaseModel):
    """Base of the agreement's models: unknown keys refused, values immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def in_force(at: datetime, effective_from: date | None, expires_on: date | None) -> bool:
    """Whether a period of the agreement covers the instant ``at``.

    A period runs from the start of ``effective_from`` (inclusive) to the start of
    ``expires_on`` (exclusive), both UK calendar dates: on the expiry date it no longer
    applies.

    Args:
        at: a timezone-aware instant.
        effective_from: first UK date in force, or None for no start.
        expires_on: first UK date no longer in force, or None for no end.

    Raises:
        ValueError: ``at`` is naive.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the evaluation time must be timezone-aware")
    today = at.astimezone(UK).date()
    if effective_from is not None and today < effective_from:
        return False
    return expires_on is None or today < expires_on


class PartyKind(StrEnum):
    """What kind of organisation a party is."""

    POLICE = "police"
    HEALTH = "health"
    LOCAL_AUTHORITY = "local_authority"
    PROBATION = "probation"
    BOROUGH_PANEL = "borough_panel"
    NEIGHBOURING_BROKER = "neighbouring_broker"
    MASH = "mash"
    VOLUNTARY_SECTOR = "voluntary_sector"


class Party(_Model):
    """An organisation that signed the agreement and may send or receive events."""

    id: PartyId
    name: Prose
    kind: PartyKind
    relevant_authority: bool = Field(
        description="A relevant authority under s.115 Crime and Disorder Act 1998. Required, "
        "so that every party's status is a recorded decision."
    )
    borough: OnsCode | None = Field(
        default=None, description="ONS code of the borough the party serves, if it serves one."
    )
    keys: tuple[KeyId, ...] = Field(
        default=(), description="Key ids in the key registry; the registry itself is by party id."
    )
    ingest_adapters: tuple[AdapterName, ...] = Field(
        default=(),
        description="The adapters (message formats) the party may send through the HTTP ingest "
        "API, e.g. `police` or `hl7v2`. Empty: the party may not ingest over HTTP.",
    )


class Partnership(_Model):
    """Who the agreement is for: the partnership's name and its home borough."""

    name: Prose
    borough: OnsCode


class BoroughRole(StrEnum):
    """How an event links a child (or intelligence) to a borough."""

    #: The authority responsible for the child: the placing authority when looked after,
    #: otherwise the authority of the home address.
    HOME = "home"
    #: The authority of the child's home address.
    LIVES_IN = "lives_in"
    #: The placing (responsible) authority of a looked-after child.
    PLACING = "placing"
    #: The authority where a looked-after child is placed (the host authority).
    PLACED_IN = "placed_in"
    #: The authority the child went missing from (missing reports).
    MISSING_FROM = "missing_from"
    #: Where the child was last seen or sighted while missing.
    SEEN_IN = "seen_in"
    #: Where the child was found.
    FOUND_IN = "found_in"
    #: The area intelligence is about, and the boroughs of its locations.
    AREA = "area"
    #: Every one of the above.
    LINKED = "linked"


class BoroughCondition(_Model):
    """Matches when any of the ``via`` roles links the event to one of ``boroughs``."""

    boroughs: tuple[OnsCode, ...]
    via: tuple[BoroughRole, ...] = (BoroughRole.LINKED,)


class Conditions(_Model):
    """When a rule applies. Each condition is any-of; all given conditions must hold.

    A condition left out does not restrict; an empty list matches nothing.
    """

    event_types: tuple[EventType, ...] | None = None
    risk_grades: tuple[RiskGrade, ...] | None = None
    cse_levels: tuple[CseLevel, ...] | None = None
    safeguarding_flags: tuple[SafeguardingFlag, ...] | None = None
    from_parties: tuple[PartyId, ...] | None = None
    linked_to: BoroughCondition | None = None


class Selector(_Model):
    """A recipient chosen per event: parties of these kinds serving the event's boroughs."""

    kinds: tuple[PartyKind, ...] = Field(min_length=1)
    borough_of: tuple[BoroughRole, ...] = Field(min_length=1)


class Recipient(_Model):
    """One recipient of a rule (a named party or a selector) and the fields it may receive."""

    party: PartyId | None = None
    select: Selector | None = None
    fields: tuple[FieldPath, ...] = ()
    field_sets: tuple[RuleId, ...] = ()

    @model_validator(mode="after")
    def _one_kind_of_recipient(self) -> Self:
        if (self.party is None) == (self.select is None):
            raise ValueError("a recipient needs exactly one of `party` or `select`")
        return self

    @property
    def label(self) -> str:
        """A short description for messages: the party id or the selector."""
        if self.party is not None:
            return self.party
        assert self.select is not None  # noqa: S101 - guaranteed by the validator
        kinds = "/".join(self.select.kinds)
        roles = "/".join(self.select.borough_of)
        return f"{kinds} of the {roles} borough"


_RETENTION = re.compile(r"^\s*(\d{1,4})\s+(day|week|month|year)s?\s*$")
_UNIT_DAYS = {"day": 1, "week": 7, "month": 31, "year": 366}


class Retention(_Model):
    """How long a recipient may keep what it received, e.g. ``6 years`` or ``3 months``."""

    amount: int = Field(ge=1, le=9999)
    unit: str = Field(pattern=r"^(day|week|month|year)$")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _RETENTION.match(value)
            if match is None:
                raise ValueError("retention must read like `30 days`, `6 months` or `2 years`")
            return {"amount": int(match.group(1)), "unit": match.group(2)}
        return value

    @property
    def max_days(self) -> int:
        """An upper bound in days, to compare retentions (months of 31, years of 366 days)."""
        return self.amount * _UNIT_DAYS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}{'' if self.amount == 1 else 's'}"


class Rule(_Model):
    """One sharing rule: when it applies, who receives what, on what basis, for how long."""

    id: RuleId
    description: Prose
    purpose: Prose
    lawful_basis: LawfulBasis
    retention: Retention
    effective_from: date | None = None
    expires_on: date | None = None
    send_to_source: bool = Field(
        default=False,
        description="Send the event back to the agency it came from, if it is a recipient.",
    )
    when: Conditions = Conditions()
    share_with: tuple[Recipient, ...] = Field(min_length=1)

    def in_force(self, at: datetime) -> bool:
        """Whether the rule's own dates cover ``at`` (the agreement's are checked apart)."""
        return in_force(at, self.effective_from, self.expires_on)


def _duplicates(ids: list[str]) -> list[str]:
    return sorted(i for i, n in Counter(ids).items() if n > 1)


class Agreement(_Model):
    """A versioned information-sharing agreement: who may receive which fields, and why."""

    version: Version
    effective_from: date
    expires_on: date | None = None
    partnership: Partnership
    field_sets: dict[RuleId, tuple[FieldPath, ...]] = Field(default_factory=dict)
    parties: tuple[Party, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()

    _party_index: dict[str, Party] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        for what, ids in (
            ("party", [p.id for p in self.parties]),
            ("rule", [r.id for r in self.rules]),
        ):
            dupes = _duplicates(ids)
            if dupes:
                raise ValueError(f"duplicate {what} id: {', '.join(dupes)}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Index the parties by id once, for lookups on every event."""
        self._party_index = {p.id: p for p in self.parties}

    def party(self, party_id: str) -> Party | None:
        """The party with this id, or None when the agreement does not name it."""
        return self._party_index.get(party_id)

    def in_force(self, at: datetime) -> bool:
        """Whether the agreement as a whole is in force at ``at``."""
        return in_force(at, self.effective_from, self.expires_on)

    def rule(self, rule_id: str) -> Rule | None:
        """The rule with this id, or None."""
        return next((r for r in self.rules if r.id == rule_id), None)
