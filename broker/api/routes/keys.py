"""``GET /v1/parties/{party}/jwks.json``: a party's public keys from the registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from broker.api.deps import Caller, get_context, require_caller
from broker.api.errors import ERROR_RESPONSES, ErrorBody

__all__ = ["Jwk", "Jwks", "router"]

router = APIRouter(tags=["keys"])


class Jwk(BaseModel):
    """One public key with the registry's members (party, validity, revocation)."""

    model_config = ConfigDict(extra="forbid")

    kty: str
    crv: str
    x: str
    kid: str
    use: str = Field(description="`sig` (Ed25519) or `enc` (X25519).")
    alg: str = Field(description="The one algorithm the key is for.")
    party: str
    nbf: int = Field(description="Valid from (seconds since the epoch).")
    exp: int = Field(description="Valid until (seconds since the epoch), exclusive.")
    revoked: bool
    revoked_at: int | None = None


class Jwks(BaseModel):
    """A JWK Set (RFC 7517)."""

    keys: list[Jwk]


@router.get(
    "/v1/parties/{party}/jwks.json",
    name="party_jwks",
    response_model=Jwks,
    response_model_exclude_none=True,
    summary="A party's public keys",
    responses={**ERROR_RESPONSES, 404: {"model": ErrorBody, "description": "No such party."}},
)
async def party_jwks(
    request: Request,
    party: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")],
    caller: Annotated[Caller, Depends(require_caller())],
) -> Jwks:
    """Every registered key of ``party``: current, retired and revoked (with their dates)."""
    registry = get_context(request).service.registry
    records = registry.keys_of(party)
    if not records:
        raise HTTPException(404)
    return Jwks(keys=[Jwk.model_validate(record.to_jwk()) for record in records])
