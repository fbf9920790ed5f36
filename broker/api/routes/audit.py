"""``GET /v1/audit`` (search the chain) and ``GET /v1/audit/verify`` (recompute it)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field
from sqlmodel import col, or_, select

from broker.api.auth import AUDIT_READERS, Role, StaffIdentity
from broker.api.context import ApiContext
from broker.api.deps import get_context, require_role
from broker.api.errors import ERROR_RESPONSES
from broker.audit import AuditKind, verify
from broker.db import gated_at_first_write, session_scope
from broker.models import AuditEntry
from broker.runtime import audit_public_keys

__all__ = ["AuditEntryView", "AuditPage", "ChainState", "router"]

router = APIRouter(tags=["audit"])

_PARTY = r"^[a-z0-9][a-z0-9-]{1,62}$"


class AuditEntryView(BaseModel):
    """One audit entry as stored: ids, codes and field names only."""

    seq: int
    at: datetime
    kind: AuditKind
    event_id: UUID | None
    party: str | None
    actor: str | None
    recipient: str | None
    rule_id: str | None
    lawful_basis: str | None
    fields: list[str]
    reason: str | None
    jti: str | None
    detail: str | None
    hash: str


class AuditPage(BaseModel):
    """Entries in chain order; pass ``next_after_seq`` as ``after_seq`` for the next page."""

    entries: list[AuditEntryView]
    next_after_seq: int | None = Field(description="Null when this is the last page.")


class ChainState(BaseModel):
    """The outcome of recomputing the whole chain and its signed checkpoints."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    checkpoints: int
    anchored: int = Field(description="Entries covered by the latest signed checkpoint.")
    signatures_checked: bool
    problem: str | None
    first_bad_seq: int | None
    summary: str


@router.get(
    "/v1/audit",
    name="audit_search",
    response_model=AuditPage,
    summary="Search the audit log (DPO and auditors)",
    responses=ERROR_RESPONSES,
)
async def audit_search(
    request: Request,
    staff: Annotated[StaffIdentity, Depends(require_role(*AUDIT_READERS))],
    *,
    event_id: Annotated[UUID | None, Query(description="Entries about this event.")] = None,
    party: Annotated[
        str | None, Query(pattern=_PARTY, description="As source, actor's party or recipient.")
    ] = None,
    kind: Annotated[AuditKind | None, Query()] = None,
    since: Annotated[AwareDatetime | None, Query(description="From this instant.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before this instant.")] = None,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Entries matching every given filter, in chain order, one page at a time."""
    context = get_context(request)
    statement = select(AuditEntry).where(col(AuditEntry.seq) > after_seq)
    if event_id is not None:
        statement = statement.where(col(AuditEntry.event_id) == event_id)
    if party is not None:
        statement = statement.where(
            or_(col(AuditEntry.party) == party, col(AuditEntry.recipient) == party)
        )
    if kind is not None:
        statement = statement.where(col(AuditEntry.kind) == kind)
    if since is not None:
        statement = statement.where(col(AuditEntry.at) >= since)
    if until is not None:
        statement = statement.where(col(AuditEntry.at) < until)
    statement = statement.order_by(col(AuditEntry.seq)).limit(limit + 1)
    rows = await asyncio.to_thread(_search, context, statement, staff, request)
    page = rows[:limit]
    return AuditPage(
        entries=[AuditEntryView.model_validate(row, from_attributes=True) for row in page],
        next_after_seq=page[-1].seq if len(rows) > limit else None,
    )


def _search(
    context: ApiContext, statement: object, staff: StaffIdentity, request: Request
) -> list[AuditEntry]:
    with gated_at_first_write(context.service.sessions) as session:
        rows = list(session.exec(statement))  # type: ignore[call-overload]
        # Reading the audit log is itself recorded: who searched, and when.
        context.service.audit.append(
            session,
            kind=AuditKind.OPENED,
            actor=staff.username,
            detail=f"endpoint=audit_search request_id={request.state.request_id}",
        )
        return rows


@router.get(
    "/v1/audit/verify",
    name="audit_verify",
    response_model=ChainState,
    summary="Recompute the audit chain and its checkpoints",
    responses=ERROR_RESPONSES,
)
async def audit_verify(
    request: Request,
    staff: Annotated[StaffIdentity, Depends(require_role(*AUDIT_READERS, Role.ADMIN))],
) -> ChainState:
    """Whether every entry and signed checkpoint verifies, and the first problem if not."""
    context = get_context(request)

    def run() -> ChainState:
        with session_scope(context.service.sessions) as session:
            report = verify(session, audit_public_keys(context.service))
        return ChainState(
            ok=report.ok,
            entries=report.entries,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            checkpoints=report.checkpoints,
            anchored=report.anchored,
            signatures_checked=report.signatures_checked,
            problem=report.problem.value if report.problem is not None else None,
            first_bad_seq=report.first_bad_seq,
            summary=report.summary(),
        )

    return await asyncio.to_thread(run)
