"""Staff login: ``POST /v1/auth/token`` (bearer token) and ``/v1/auth/session`` (cookie)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from broker.api.auth import CredentialRefused, IssuedToken, Role, StaffIdentity
from broker.api.context import ApiContext
from broker.api.deps import end_session, get_context, refuse, require_staff, start_session
from broker.api.errors import ERROR_RESPONSES

__all__ = ["Login", "TokenAnswer", "WhoAmI", "router"]

router = APIRouter(tags=["staff"])


class Login(BaseModel):
    """A user name and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenAnswer(BaseModel):
    """A staff bearer token (RFC 6750) and its lifetime."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the RFC 6750 token type name
    expires_in: int = Field(description="Seconds until the token stops working.")


class WhoAmI(BaseModel):
    """The authenticated member of staff."""

    username: str
    roles: list[Role]
    provider: str


async def _login(request: Request, context: ApiContext, login: Login) -> IssuedToken:
    client = request.client.host if request.client is not None else "unknown"
    context.login_limiter.take(f"login:{client}")
    try:
        identity, version = await asyncio.to_thread(
            context.accounts.authenticate, login.username, login.password
        )
    except CredentialRefused as exc:
        raise await refuse(request, exc) from None
    request.state.actor = identity.username
    return context.tokens.issue(identity.username, version)


@router.post(
    "/v1/auth/token",
    name="staff_token",
    response_model=TokenAnswer,
    summary="Exchange a user name and password for a short-lived bearer token",
    responses=ERROR_RESPONSES,
)
async def staff_token(request: Request, login: Login) -> TokenAnswer:
    """A token for ``Authorization: Bearer``; local accounts only."""
    issued = await _login(request, get_context(request), login)
    return TokenAnswer(access_token=issued.token, expires_in=issued.lifetime_seconds)


@router.post(
    "/v1/auth/session",
    name="staff_session",
    status_code=204,
    response_class=Response,
    summary="Log in with a session cookie (for the intake pages)",
    responses=ERROR_RESPONSES,
)
async def staff_session(request: Request, login: Login) -> Response:
    """Set the HttpOnly, SameSite=Strict session cookie."""
    context = get_context(request)
    issued = await _login(request, context, login)
    response = Response(status_code=204)
    start_session(response, issued, secure=context.tls or context.settings.secure_cookies)
    return response


@router.delete(
    "/v1/auth/session",
    name="staff_logout",
    status_code=204,
    response_class=Response,
    summary="Log out (clear the session cookie)",
)
async def staff_logout(request: Request) -> Response:
    """Clear the cookie; the token itself lapses within its short lifetime."""
    context = get_context(request)
    response = Response(status_code=204)
    end_session(response, secure=context.tls or context.settings.secure_cookies)
    return response


@router.get(
    "/v1/auth/me",
    name="staff_me",
    response_model=WhoAmI,
    summary="Who the presented staff credentials belong to",
    responses=ERROR_RESPONSES,
)
async def staff_me(staff: Annotated[StaffIdentity, Depends(require_staff)]) -> WhoAmI:
    """The user name, roles and identity provider."""
    return WhoAmI(username=staff.username, roles=sorted(staff.roles), provider=staff.provider)
