"""Who may see which intake page, and the intake context a request works with.

Intake staff and managers triage; only managers see the KPIs and the tracker's figures
(the strategic group's view); nobody signed out sees anything, and the audit log itself
stays with the DPO and auditors (``broker/api/routes/audit.py``). Pages send a person
who is not signed in (or whose session lapsed) to the sign-in page; the JSON twins
answer 401 as the rest of the API does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from broker.api.auth import CredentialRefused, Role, StaffIdentity
from broker.api.deps import cookie_scheme, ensure_roles, get_context, require_role, require_staff
from broker.intake.context import IntakeContext
from broker.intake.triage import Actor

__all__ = [
    "INTAKE_ROLES",
    "KPI_ROLES",
    "SIGN_IN_PATH",
    "actor_of",
    "get_intake",
    "page_role",
    "require_intake",
    "require_kpi",
]

#: Roles that triage alerts and see children's timelines, episodes and clocks.
INTAKE_ROLES = (Role.INTAKE, Role.MANAGER)
#: Roles that see the CSE tracker and its KPIs.
KPI_ROLES = (Role.MANAGER,)
SIGN_IN_PATH = "/intake/sign-in"

_lock = asyncio.Lock()


async def get_intake(request: Request) -> IntakeContext:
    """The intake context of this application, loaded on first use."""
    state = request.app.state
    context: IntakeContext | None = getattr(state, "intake", None)
    if context is None:
        async with _lock:
            context = getattr(state, "intake", None)
            if context is None:
                service = get_context(request).service
                context = await asyncio.to_thread(IntakeContext.load, service)
                state.intake = context
    return context


def actor_of(staff: StaffIdentity, roles: tuple[Role, ...]) -> Actor:
    """The audit actor: the user name and the first of ``roles`` the person holds."""
    role = next((r for r in roles if r in staff.roles), sorted(staff.roles)[0])
    return Actor(name=staff.username, role=role.value)


def page_role(*roles: Role) -> Callable[..., Awaitable[StaffIdentity]]:
    """A page dependency: staff holding any of ``roles``, or a redirect to sign in."""
    wanted = frozenset(roles)

    async def dependency(
        request: Request, cookie: Annotated[str | None, Depends(cookie_scheme)]
    ) -> StaffIdentity:
        if cookie is None:
            raise HTTPException(status_code=303, headers={"Location": SIGN_IN_PATH})
        try:
            staff = await require_staff(request, None, cookie)
        except CredentialRefused:
            # Already audited by the API's refusal path; a lapsed session signs in again.
            raise HTTPException(status_code=303, headers={"Location": SIGN_IN_PATH}) from None
        await ensure_roles(request, staff, wanted)
        return staff

    return dependency


#: JSON API dependencies (bearer token or session cookie; 401/403 as the API answers).
require_intake = require_role(*INTAKE_ROLES)
require_kpi = require_role(*KPI_ROLES)
