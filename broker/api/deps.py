"""Request dependencies: who is calling (partner or staff), and what they may do.

Routes, and the intake web pages, declare what they need::

    @router.get("/v1/audit")
    async def search(staff: StaffIdentity = Depends(require_role(Role.DPO, Role.AUDITOR))): ...

    @router.post("/v1/ingest/{adapter}")
    async def ingest(pending: PendingAssertion = Depends(require_partner_pending)): ...

Staff present a bearer token (``Authorization: Bearer``) or the session cookie
(``SESSION_COOKIE``, set by ``POST /v1/auth/session`` or by ``start_session``). Partners
present a client assertion as a bearer token. Every refusal is audited (kind
``rejected``, reason ``auth.<code>``) before the generic 401 or 403 goes out.

``require_partner`` remembers the assertion's id (replay protection) in a transaction of
its own. ``require_partner_pending`` leaves that to the route, which remembers it in the
transaction of its own work (one commit per request), or calls ``PendingAssertion.settle``
on every path that ends without that transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from broker.api.auth import (
    STAFF_TOKEN_TYPE,
    AccessDenied,
    CheckedAssertion,
    CredentialRefused,
    IssuedToken,
    PartnerIdentity,
    Role,
    StaffIdentity,
    parse_unverified_header,
)
from broker.api.context import ApiContext, Refusal
from broker.exceptions import BrokerError

__all__ = [
    "SESSION_COOKIE",
    "Caller",
    "PendingAssertion",
    "bearer_scheme",
    "cookie_scheme",
    "end_session",
    "ensure_roles",
    "get_context",
    "refuse",
    "require_caller",
    "require_partner",
    "require_partner_pending",
    "require_role",
    "require_staff",
    "settle_pending_assertion",
    "start_session",
]

#: The staff session cookie: HttpOnly, SameSite=Strict, Secure under TLS.
SESSION_COOKIE = "mash_session"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="Partners: a client assertion (signed JWT) per request. Staff: a token from "
    "POST /v1/auth/token.",
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="Staff session cookie from POST /v1/auth/session.",
)


def get_context(request: Request) -> ApiContext:
    """The ``ApiContext`` of the application serving ``request``."""
    context: ApiContext = request.app.state.api
    return context


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling an endpoint that partners and staff may both use."""

    partner: PartnerIdentity | None = None
    staff: StaffIdentity | None = None

    @property
    def label(self) -> str:
        """The party id or the user name."""
        if self.partner is not None:
            return self.partner.party
        return self.staff.username if self.staff is not None else "anonymous"


def _endpoint(request: Request) -> str:
    name = getattr(request.scope.get("route"), "name", None)
    return name if isinstance(name, str) and name.isidentifier() else "unknown"


async def refuse(request: Request, exc: CredentialRefused | AccessDenied) -> BrokerError:
    """Audit a refusal of ``request`` and hand back ``exc`` for the caller to raise."""
    context = get_context(request)
    refusal = Refusal(
        reason=exc.reason,
        endpoint=_endpoint(request),
        request_id=str(getattr(request.state, "request_id", "none")),
        party=getattr(exc, "party", None),
        actor=exc.actor,
        kid=getattr(exc, "kid", None),
        claimed_party=getattr(exc, "claimed_party", None),
    )
    await asyncio.to_thread(context.audit_refusal, refusal)
    return exc


@dataclass(eq=False, slots=True)
class PendingAssertion:
    """A request's client assertion, checked but for replay, whose id is to be remembered.

    Exactly one of two things must happen to it before the request is answered: the
    route's own transaction remembers the id (``broker.db.remember_jtis``) and the route
    calls :meth:`remembered_in_transaction`, or :meth:`settle` remembers it in a
    transaction of its own. Either way a reused id means a 401 ``replay`` refusal.
    """

    checked: CheckedAssertion
    context: ApiContext
    #: The id was remembered, or found to be a replay; nothing more is to be done.
    settled: bool = False

    @property
    def identity(self) -> PartnerIdentity:
        """The partner the assertion names."""
        return self.checked.identity

    def remembered_in_transaction(self) -> None:
        """The route's transaction remembered the id."""
        self.settled = True
        self.context.note_remembered(self.checked)

    async def settle(self, request: Request) -> None:
        """Remember the id in its own transaction, unless done already.

        For every path of the request that ends without the route's own transaction
        remembering it: a refusal, an error, an answer from the idempotency store.

        Raises:
            CredentialRefused: ``replay`` (audited): the id was remembered before.
            TransportError: the database is unavailable.
        """
        if self.settled:
            return
        self.settled = True
        try:
            await asyncio.to_thread(self.context.assertions.remember, self.checked)
        except CredentialRefused as exc:
            self.context.note_remembered(self.checked)
            raise await refuse(request, exc) from None
        self.context.note_remembered(self.checked)

    async def refuse_replay(self, request: Request) -> BrokerError:
        """Audit the refusal of a reused id found by the route's transaction; hand it back."""
        self.settled = True
        self.context.note_remembered(self.checked)
        return await refuse(request, self.checked.replay_refusal())


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    return credentials.credentials or None


async def _partner(request: Request, token: str | None) -> PartnerIdentity:
    # Checked as for ingest, then the id remembered at once in a transaction of its own.
    pending = await _partner_pending(request, token)
    await pending.settle(request)
    return pending.identity


async def _partner_pending(request: Request, token: str | None) -> PendingAssertion:
    context = get_context(request)
    if token is None:
        raise await refuse(request, CredentialRefused("token_missing", "no bearer token"))
    audience = context.settings.public_base_url + request.url.path
    try:
        # No I/O and a fraction of a millisecond: not worth a hop to a worker thread.
        checked = context.check_assertion(token, audience)
    except CredentialRefused as exc:
        raise await refuse(request, exc) from None
    request.state.party = checked.identity.party
    pending = PendingAssertion(checked, context)
    # Found by the request validation handler, should the route never run.
    request.state.pending_assertion = pending
    return pending


async def _staff(request: Request, token: str | None, cookie: str | None) -> StaffIdentity:
    context = get_context(request)
    presented = token or cookie
    if presented is None:
        raise await refuse(request, CredentialRefused("token_missing", "no staff credentials"))
    if token is None and request.method in _UNSAFE_METHODS:
        try:
            _check_origin(request, context)
        except CredentialRefused as exc:
            raise await refuse(request, exc) from None
    try:
        identity = await asyncio.to_thread(context.staff.verify, presented)
    except CredentialRefused as exc:
        raise await refuse(request, exc) from None
    request.state.actor = identity.username
    return identity


def _check_origin(request: Request, context: ApiContext) -> None:
    """A cookie-authenticated change must come from our own pages (CSRF defence in depth)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != context.settings.public_base_url:
        raise CredentialRefused("origin_refused", "cross-origin request with a session cookie")


async def require_partner(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> PartnerIdentity:
    """A partner system authenticated by its client assertion (401 and audited if not)."""
    return await _partner(request, _bearer_token(credentials))


async def require_partner_pending(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> PendingAssertion:
    """A partner system whose client assertion checked, its id not yet remembered.

    401 and audited if the assertion is wrong or its id already remembered. The route
    must remember the id exactly once (see ``PendingAssertion``).
    """
    return await _partner_pending(request, _bearer_token(credentials))


async def settle_pending_assertion(request: Request) -> None:
    """Remember the request's pending assertion id if the route did not (see ``settle``).

    Raises:
        CredentialRefused: ``replay`` (audited).
        TransportError: the database is unavailable.
    """
    pending = getattr(request.state, "pending_assertion", None)
    if isinstance(pending, PendingAssertion):
        await pending.settle(request)


async def require_staff(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> StaffIdentity:
    """Any authenticated member of staff (bearer token or session cookie)."""
    return await _staff(request, _bearer_token(credentials), cookie)


def require_role(*roles: Role) -> Callable[..., Awaitable[StaffIdentity]]:
    """A dependency admitting staff holding any of ``roles`` (403 and audited otherwise).

    Args:
        roles: the roles admitted; none means any authenticated member of staff.
    """
    wanted = frozenset(roles)

    async def dependency(
        request: Request, staff: Annotated[StaffIdentity, Depends(require_staff)]
    ) -> StaffIdentity:
        await ensure_roles(request, staff, wanted)
        return staff

    return dependency


def require_caller(*staff_roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting any partner, or staff holding any of ``staff_roles``.

    A bearer token whose header says ``typ: mash-staff+jwt`` is checked as a staff token;
    any other bearer token as a client assertion; a session cookie alone as staff.
    """
    wanted = frozenset(staff_roles)

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        cookie: Annotated[str | None, Depends(cookie_scheme)],
    ) -> Caller:
        token = _bearer_token(credentials)
        header = parse_unverified_header(token) if token else None
        is_staff = (token is None and cookie is not None) or (
            header is not None and header.get("typ") == STAFF_TOKEN_TYPE
        )
        if not is_staff:
            return Caller(partner=await _partner(request, token))
        staff = await _staff(request, token, cookie)
        await ensure_roles(request, staff, wanted)
        return Caller(staff=staff)

    return dependency


async def ensure_roles(request: Request, staff: StaffIdentity, roles: frozenset[Role]) -> None:
    """Refuse (403, audited) unless ``staff`` holds one of ``roles``; none admits anyone."""
    if roles and not staff.has_any(roles):
        raise await refuse(
            request, AccessDenied("role_missing", "staff role missing", actor=staff.username)
        )


def start_session(response: Response, issued: IssuedToken, *, secure: bool) -> None:
    """Set the staff session cookie on ``response`` (the intake pages' login uses it too).

    Args:
        response: the answer to the login.
        issued: the token from ``StaffTokens.issue``.
        secure: mark the cookie Secure (TLS here, or behind a TLS proxy).
    """
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=issued.lifetime_seconds,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def end_session(response: Response, *, secure: bool) -> None:
    """Clear the staff session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="strict"
    )
