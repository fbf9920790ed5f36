"""The claims of a disclosure: what a recipient verifies inside the signed envelope."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from schemas.common import PartyId
from schemas.events import EventType, LawfulBasis

__all__ = ["DisclosureClaims", "Provenance", "RuleId"]

#: A rule's id in the information-sharing agreement, e.g. ``R-MISSING-HIGH`` or ``r12``.
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")]

#: The agreement's purpose text: bounded, line breaks and tabs allowed, no other control
#: characters. Kept verbatim, not stripped: it is signed.
_Purpose = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
    ),
]

#: A token id: long enough to be unique, short and plain enough to store and log.
_Jti = Annotated[
    str, StringConstraints(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
]


class _Claims(BaseModel):
    # Not a CanonicalModel: whitespace is not stripped, because these values are signed and
    # the recipient must see exactly what the sender signed.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Claims):
    """Where the disclosed event came from, and a digest binding it to the source's original."""

    source_agency: PartyId = Field(description="The party that published the original event.")
    source_event_id: UUID = Field(description="The original event's ``metadata.event_id``.")
    original_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="Lower-case hex SHA-256 of the source's signed original message, as received."
    )


class DisclosureClaims(_Claims):
    """The JWT claims of one disclosure to one recipient.

    ``event`` is the canonical event after data minimisation: a JSON object that may lack
    fields the full :class:`schemas.Event` requires, so it is carried as a plain object.
    """

    iss: PartyId = Field(description="The sending party; its signing key signed the token.")
    aud: PartyId = Field(description="The one recipient party.")
    iat: StrictInt = Field(ge=0, description="Issued at, seconds since the epoch (UTC).")
    exp: StrictInt = Field(ge=0, description="Expiry, seconds since the epoch (UTC).")
    jti: _Jti = Field(description="Unique token id, for replay protection.")
    event: dict[str, Any] = Field(description="The minimised canonical event.")
    event_type: EventType
    rule_id: RuleId = Field(description="The agreement rule that allowed this disclosure.")
    lawful_basis: LawfulBasis
    purpose: _Purpose
    provenance: Provenance
