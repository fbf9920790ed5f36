"""``GET /v1/agreement``: which information-sharing agreement is in force."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from broker.api.deps import Caller, get_context, require_caller
from broker.api.errors import ERROR_RESPONSES

__all__ = ["AgreementSummary", "router"]

router = APIRouter(tags=["agreement"])


class AgreementSummary(BaseModel):
    """The agreement this broker applies, identified by version and file hash."""

    version: str
    sha256: str = Field(description="SHA-256 (hex) of the agreement file as loaded.")
    effective_from: date
    expires_on: date | None
    in_force: bool = Field(description="Whether the agreement covers the present moment.")
    partnership: str
    borough: str = Field(description="ONS code of the partnership's home borough.")
    parties: list[str] = Field(description="Party ids of the agreement.")
    rules: list[str] = Field(description="Rule ids of the agreement.")


@router.get(
    "/v1/agreement",
    name="agreement",
    response_model=AgreementSummary,
    summary="The agreement in force",
    responses=ERROR_RESPONSES,
)
async def agreement(
    request: Request, caller: Annotated[Caller, Depends(require_caller())]
) -> AgreementSummary:
    """Version, hash and outline of the agreement the broker decides by."""
    context = get_context(request)
    loaded = context.service.agreement
    return AgreementSummary(
        version=loaded.version,
        sha256=context.agreement_sha256,
        effective_from=loaded.effective_from,
        expires_on=loaded.expires_on,
        in_force=loaded.in_force(datetime.now(UTC)),
        partnership=loaded.partnership.name,
        borough=loaded.partnership.borough,
        parties=[party.id for party in loaded.parties],
        rules=[rule.id for rule in loaded.rules],
    )
