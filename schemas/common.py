"""Shared building blocks of the canonical schema: base model, UTC times, codes, identifiers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from nhs_number import is_valid as _nhs_is_valid  # type: ignore[attr-defined]
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "SCHEMA_VERSION",
    "TEST_NHS_PREFIX",
    "CanonicalModel",
    "LocalAuthority",
    "OnsCode",
    "PartyId",
    "ShortText",
    "UtcDatetime",
    "is_valid_nhs_number",
    "local_authority_name",
]

#: The version of the canonical schema these models describe.
SCHEMA_VERSION = 1

#: NHS numbers beginning 999 are reserved for test data.
TEST_NHS_PREFIX = "999"


class CanonicalModel(BaseModel):
    """Base of every canonical model: unknown fields refused, values immutable once made."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        use_enum_values=False,
        validate_default=True,
        # Errors may reach logs and partners: never echo the (personal) input back.
        hide_input_in_errors=True,
    )


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A timezone-aware instant, stored and emitted in UTC. Naive datetimes are refused.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: Free text of bounded length with no control characters.
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]

#: A party's id in the information-sharing agreement, e.g. ``tvp-police``.
PartyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


class LocalAuthority(StrEnum):
    """Local authorities the seed partnership names (ONS codes); others are allowed as codes."""

    WINDSOR_AND_MAIDENHEAD = "E06000040"
    SLOUGH = "E06000039"
    BRACKNELL_FOREST = "E06000036"
    WOKINGHAM = "E06000041"
    READING = "E06000038"
    WEST_BERKSHIRE = "E06000037"


_LA_NAMES = {
    LocalAuthority.WINDSOR_AND_MAIDENHEAD: "Windsor and Maidenhead",
    LocalAuthority.SLOUGH: "Slough",
    LocalAuthority.BRACKNELL_FOREST: "Bracknell Forest",
    LocalAuthority.WOKINGHAM: "Wokingham",
    LocalAuthority.READING: "Reading",
    LocalAuthority.WEST_BERKSHIRE: "West Berkshire",
}

#: An ONS local authority code: English unitary / district / metropolitan / London
#: (E06-E09), county (E10), Welsh (W06), Scottish (S12) or Northern Irish (N09).
OnsCode = Annotated[
    str,
    StringConstraints(pattern=r"^(E0[6-9]|E10|W06|S12|N09)\d{6}$"),
    Field(examples=["E06000040"]),
]


def local_authority_name(code: str) -> str:
    """The name of a known local authority, or the code itself when it is not in the table."""
    try:
        return _LA_NAMES[LocalAuthority(code)]
    except ValueError:
        return code


def is_valid_nhs_number(value: str) -> bool:
    """True when ``value`` is ten digits whose modulus-11 check digit is right."""
    return len(value) == 10 and value.isdigit() and bool(_nhs_is_valid(value))


def _check_nhs_number(value: str) -> str:
    compact = value.replace(" ", "")
    if not is_valid_nhs_number(compact):
        # The number itself is personal data: the message names the rule, not the value.
        raise ValueError("not a valid NHS number (10 digits, modulus-11 check digit)")
    return compact


#: An NHS number: ten digits (spaces allowed on input) with a valid modulus-11 check digit.
NhsNumber = Annotated[
    str,
    StringConstraints(min_length=10, max_length=12),
    AfterValidator(_check_nhs_number),
    Field(examples=["9990000018"]),
]
__all__ += ["NhsNumber"]


def make_test_nhs_number(serial: int) -> str:
    """A valid NHS number from the 999 test range, for synthetic data.

    Serials whose check digit would be 10 (no valid number) are skipped to the next one.
    """
    if serial < 0:
        raise ValueError("serial must not be negative")
    candidate = serial
    while True:
        body = f"{TEST_NHS_PREFIX}{candidate % 1_000_000:06d}"
        remainder = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
        check = 11 - remainder
        if check == 11:
            check = 0
        if check != 10:
            return body + str(check)
        candidate += 1


__all__ += ["make_test_nhs_number"]
