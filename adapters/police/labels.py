"""The coded values of the police format: the labels a force sends and their canonical meaning."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BeforeValidator, WithJsonSchema

from schemas.events import CseIndicator, FoundBy, LocationKind, RiskGrade
from schemas.person import PlacementType, Sex

__all__ = [
    "ASSOCIATE_ROLES",
    "CSE_INDICATORS",
    "FOUND_BY",
    "LOCATION_KINDS",
    "PLACEMENT_TYPES",
    "RISK_GRADES",
    "SEXES",
    "AssociateRole",
    "AssociateRoleLabel",
    "CseIndicatorLabel",
    "FoundByLabel",
    "LocationKindLabel",
    "PlacementLabel",
    "RiskLabel",
    "SexLabel",
    "normalise_label",
]

E = TypeVar("E", bound=Enum)

_SEPARATORS = re.compile(r"[\s_-]+")


def normalise_label(text: str) -> str:
    """The lookup key of a force's label: upper case, with spaces, ``_`` and ``-`` as one space.

    Forces' systems spell the same code ``NO APPARENT RISK``, ``No_Apparent_Risk`` or
    ``no-apparent-risk``; all of them mean one thing.
    """
    return _SEPARATORS.sub(" ", text.upper()).strip()


def _from_enum(enum: type[E], **synonyms: E) -> dict[str, E]:
    """Labels for each member (``no_apparent_risk`` is ``NO APPARENT RISK``) and synonyms."""
    table = {normalise_label(member.value): member for member in enum}
    table.update({normalise_label(label): member for label, member in synonyms.items()})
    return table


#: College of Policing risk grades; ``ABSENT`` is the category the continuum replaced.
RISK_GRADES: Mapping[str, RiskGrade] = _from_enum(RiskGrade, ABSENT=RiskGrade.NO_APPARENT_RISK)

#: Sex as police systems record it: the words, or the single letters of the PNC codes.
SEXES: Mapping[str, Sex] = _from_enum(Sex, M=Sex.MALE, F=Sex.FEMALE, X=Sex.OTHER, U=Sex.UNKNOWN)

PLACEMENT_TYPES: Mapping[str, PlacementType] = _from_enum(
    PlacementType,
    CHILDRENS_HOME=PlacementType.RESIDENTIAL,
    FOSTER_CARE=PlacementType.FOSTER,
    SUPPORTED_ACCOMMODATION=PlacementType.SEMI_INDEPENDENT,
)

FOUND_BY: Mapping[str, FoundBy] = _from_enum(FoundBy, RETURNED_HOME=FoundBy.SELF_RETURNED)

CSE_INDICATORS: Mapping[str, CseIndicator] = _from_enum(CseIndicator)

LOCATION_KINDS: Mapping[str, LocationKind] = _from_enum(LocationKind)

AssociateRole = Literal["suspected_offender", "peer", "adult_associate", "unknown"]

#: Roles of people associated with the child.
ASSOCIATE_ROLES: Mapping[str, AssociateRole] = {
    "SUSPECTED OFFENDER": "suspected_offender",
    "PEER": "peer",
    "ADULT ASSOCIATE": "adult_associate",
    "UNKNOWN": "unknown",
}


def _lookup(table: Mapping[str, Any], what: str) -> Callable[[Any], Any]:
    choices = ", ".join(table)

    def lookup(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, one of {choices}")  # noqa: TRY004 - pydantic wants ValueError
        try:
            return table[normalise_label(value)]
        except KeyError:
            # The value is not repeated: free text in a coded field may hold personal data.
            raise ValueError(f"not a recognised {what}; expected one of {choices}") from None

    return lookup


def _label_schema(table: Mapping[str, Any], what: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "enum": list(table),
            "description": f"{what}. Case, spaces, '_' and '-' are not significant.",
        }
    )


RiskLabel = Annotated[
    RiskGrade,
    BeforeValidator(_lookup(RISK_GRADES, "risk grade")),
    _label_schema(
        RISK_GRADES, "College of Policing risk grade; ABSENT is read as NO APPARENT RISK"
    ),
]
SexLabel = Annotated[
    Sex,
    BeforeValidator(_lookup(SEXES, "sex")),
    _label_schema(SEXES, "Recorded sex; M, F, X, U as on the PNC"),
]
PlacementLabel = Annotated[
    PlacementType,
    BeforeValidator(_lookup(PLACEMENT_TYPES, "placement type")),
    _label_schema(PLACEMENT_TYPES, "Kind of placement"),
]
FoundByLabel = Annotated[
    FoundBy,
    BeforeValidator(_lookup(FOUND_BY, "finder")),
    _label_schema(FOUND_BY, "Who found the child, or how the child came back"),
]
CseIndicatorLabel = Annotated[
    CseIndicator,
    BeforeValidator(_lookup(CSE_INDICATORS, "CSE indicator")),
    _label_schema(CSE_INDICATORS, "CSE indicator"),
]
LocationKindLabel = Annotated[
    LocationKind,
    BeforeValidator(_lookup(LOCATION_KINDS, "location kind")),
    _label_schema(LOCATION_KINDS, "Kind of location"),
]
AssociateRoleLabel = Annotated[
    AssociateRole,
    BeforeValidator(_lookup(ASSOCIATE_ROLES, "associate role")),
    _label_schema(ASSOCIATE_ROLES, "The associate's role"),
]
