"""The child an event is about: identity, home address and looked-after status."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from schemas.common import CanonicalModel, NhsNumber, OnsCode, ShortText

__all__ = ["Address", "Child", "LookedAfter", "PlacementType", "Sex"]

Postcode = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    StringConstraints(pattern=r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$"),
]


class Sex(StrEnum):
    """Administrative sex as partner systems record it (NHS Data Dictionary values)."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class Address(CanonicalModel):
    """A postal address with the local authority it lies in."""

    lines: tuple[ShortText, ...] = Field(default=(), max_length=5)
    town: ShortText | None = None
    postcode: Postcode | None = None
    local_authority: OnsCode | None = Field(
        default=None, description="ONS code of the local authority the address lies in."
    )


class PlacementType(StrEnum):
    """Where a looked-after child lives."""

    FOSTER = "foster"
    RESIDENTIAL = "residential"
    KINSHIP = "kinship"
    SEMI_INDEPENDENT = "semi_independent"
    SECURE = "secure"
    OTHER = "other"


class LookedAfter(CanonicalModel):
    """Looked-after status: the responsible (placing) authority and where the child is placed."""

    responsible_authority: OnsCode = Field(
        description="ONS code of the placing (home) authority responsible for the child."
    )
    placed_in: OnsCode | None = Field(
        default=None, description="ONS code of the authority where the child is placed (host)."
    )
    placement_type: PlacementType | None = None

    @property
    def out_of_area(self) -> bool:
        """True when the child is placed outside the responsible authority."""
        return self.placed_in is not None and self.placed_in != self.responsible_authority


class Child(CanonicalModel):
    """The subject of an event. At least one identifier or a name with date of birth."""

    given_name: ShortText | None = None
    family_name: ShortText | None = None
    date_of_birth: date | None = None
    sex: Sex | None = None
    nhs_number: NhsNumber | None = None
    paris_id: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{3,20}$")] | None = Field(
        default=None, description="The council's Paris person id."
    )
    police_person_ref: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9/-]{3,30}$")] | None = (
        Field(default=None, description="The police force's person reference.")
    )
    home_address: Address | None = None
    looked_after: LookedAfter | None = Field(
        default=None, description="Present only when the child is looked after."
    )

    @model_validator(mode="after")
    def _identifiable(self) -> Child:
        has_id = any((self.nhs_number, self.paris_id, self.police_person_ref))
        has_name = bool(self.family_name and self.date_of_birth)
        if not (has_id or has_name):
            raise ValueError(
                "the child needs an NHS number, Paris id, police person reference, "
                "or a family name with date of birth"
            )
        return self

    @property
    def home_authority(self) -> str | None:
        """The ONS code of the authority responsible for the child, if known."""
        if self.looked_after is not None:
            return self.looked_after.responsible_authority
        return self.home_address.local_authority if self.home_address else None
